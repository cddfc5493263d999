//! Recorder and node memory over long recordings (filled in by the memory bench work).
