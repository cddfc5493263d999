//! Appending to WAV files built byte by byte, with the headers that sox,
//! ffmpeg and a killed recorder leave behind.

use std::path::{Path, PathBuf};

use super::*;
use crate::wav::{open, Opened, WavFormat};

const STEREO: WavFormat = WavFormat {
    channels: 2,
    sample_rate: 44_100,
};

/// One second of 44.1 kHz stereo: 176 400 bytes.
const ONE_SECOND: usize = 44_100 * 2;

fn temp_file(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("audiorecorder-repair-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn signal(samples: usize) -> Vec<i16> {
    (0..samples)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761) as i16)
        .collect()
}

/// A 44.1 kHz stereo 16-bit PCM WAV: `riff_size` and `data_size` as given
/// (placeholders included), the samples, then `after` verbatim.
fn wav_bytes(riff_size: u32, data_size: u32, samples: &[i16], after: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&riff_size.to_le_bytes());
    b.extend_from_slice(b"WAVE");
    b.extend_from_slice(b"fmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes()); // PCM
    b.extend_from_slice(&2u16.to_le_bytes()); // channels
    b.extend_from_slice(&44_100u32.to_le_bytes());
    b.extend_from_slice(&(44_100u32 * 4).to_le_bytes()); // byte rate
    b.extend_from_slice(&4u16.to_le_bytes()); // block align
    b.extend_from_slice(&16u16.to_le_bytes()); // bits
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data_size.to_le_bytes());
    for s in samples {
        b.extend_from_slice(&s.to_le_bytes());
    }
    b.extend_from_slice(after);
    b
}

/// A `LIST`/`INFO` chunk with one `ISFT` tag ("Lavf58", padded), as
/// ffmpeg writes it: 28 bytes.
fn list_chunk() -> Vec<u8> {
    let mut c = Vec::new();
    c.extend_from_slice(b"LIST");
    c.extend_from_slice(&20u32.to_le_bytes());
    c.extend_from_slice(b"INFO");
    c.extend_from_slice(b"ISFT");
    c.extend_from_slice(&7u32.to_le_bytes());
    c.extend_from_slice(b"Lavf58\0\0");
    c
}

/// Appends `new` through [`open`] and returns the samples read back and
/// the file's length.
fn append(path: &Path, new: &[i16]) -> (Vec<i16>, u64, Opened) {
    let (mut w, opened) = open(path, STEREO, false).unwrap();
    for &s in new {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
    let samples = hound::WavReader::open(path)
        .unwrap()
        .samples()
        .map(Result::unwrap)
        .collect();
    (samples, std::fs::metadata(path).unwrap().len(), opened)
}

#[test]
fn a_header_counting_nothing_keeps_the_second_of_audio_it_holds() {
    let path = temp_file("zero.wav");
    let old = signal(ONE_SECOND);
    std::fs::write(&path, wav_bytes(36, 0, &old, &[])).unwrap();
    let repair = repair(&path, STEREO).unwrap().unwrap();
    assert_eq!(
        (repair.declared, repair.present, repair.kept, repair.cut),
        (0, 176_400, 176_400, 0)
    );
    // Already repaired: nothing more to do.
    assert_eq!(super::repair(&path, STEREO).unwrap(), None);
    let new = signal(8);
    let (samples, len, opened) = append(&path, &new);
    assert_eq!(opened, Opened::Appended(44_100));
    assert_eq!(samples.len(), old.len() + new.len());
    assert!(samples[..old.len()] == old[..] && samples[old.len()..] == new[..]);
    assert_eq!(len, 44 + 2 * (old.len() + new.len()) as u64);
}

#[test]
fn placeholder_sizes_larger_than_the_file_are_clamped_not_seeked_past() {
    for (riff, data) in [(0x7FFF_F024, 0x7FFF_F000), (u32::MAX, u32::MAX)] {
        let path = temp_file(&format!("placeholder-{data:x}.wav"));
        let old = signal(ONE_SECOND);
        std::fs::write(&path, wav_bytes(riff, data, &old, &[])).unwrap();
        let new = signal(6);
        let (samples, len, opened) = append(&path, &new);
        assert_eq!(opened, Opened::Appended(44_100), "{data:#x}");
        // No hole: the new samples follow the old ones directly.
        assert_eq!(len, 44 + 2 * (old.len() + new.len()) as u64, "{data:#x}");
        assert!(samples[..old.len()] == old[..] && samples[old.len()..] == new[..]);
    }
}

#[test]
fn a_trailing_partial_frame_is_cut_and_reported() {
    let path = temp_file("partial.wav");
    let old = signal(10);
    // The header counts 4 samples; 6 more and 3 stray bytes follow.
    std::fs::write(&path, wav_bytes(44, 8, &old, &[0xAA, 0xBB, 0xCC])).unwrap();
    let repair = repair(&path, STEREO).unwrap().unwrap();
    assert_eq!(
        (repair.declared, repair.present, repair.kept, repair.cut),
        (8, 23, 20, 3)
    );
    assert_eq!(
        repair.to_string(),
        "the header counted 8 bytes of audio, the file holds 23; kept 20 bytes, cut 3 bytes of a \
         partial frame"
    );
    let (samples, _, _) = append(&path, &[1, 2]);
    assert_eq!(samples[..10], old[..]);
    assert_eq!(samples[10..], [1, 2]);
}

#[test]
fn chunks_after_the_audio_are_dropped_and_named() {
    let path = temp_file("list.wav");
    let old = signal(400);
    let list = list_chunk();
    let riff = (36 + 800 + list.len()) as u32;
    std::fs::write(&path, wav_bytes(riff, 800, &old, &list)).unwrap();
    let repair = repair(&path, STEREO).unwrap().unwrap();
    assert_eq!(repair.kept, 800);
    assert_eq!(repair.dropped_chunks, [("LIST".to_owned(), 20)]);
    assert!(
        repair
            .to_string()
            .ends_with("dropped the chunk(s) after the audio, LIST (20 bytes) (appending needs the audio last)"),
        "{repair}"
    );
    let (samples, len, _) = append(&path, &[5, 6]);
    assert_eq!(samples[..400], old[..]);
    assert_eq!(samples[400..], [5, 6]);
    assert_eq!(len, 44 + 804);
}

#[test]
fn a_placeholder_with_tags_after_the_audio_keeps_everything_as_audio() {
    // With a size that runs past the end, nothing can be told apart from
    // audio: everything after the data header is kept (as whole frames;
    // the 28 tag bytes become 7 frames of noise).
    let path = temp_file("placeholder-list.wav");
    let old = signal(400);
    let list = list_chunk();
    std::fs::write(&path, wav_bytes(u32::MAX, u32::MAX, &old, &list)).unwrap();
    let repair = repair(&path, STEREO).unwrap().unwrap();
    assert_eq!((repair.kept, repair.cut), (828, 0));
    assert!(repair.dropped_chunks.is_empty());
}

#[test]
fn a_well_formed_file_is_left_alone() {
    let path = temp_file("fine.wav");
    let old = signal(40);
    std::fs::write(&path, wav_bytes(36 + 80, 80, &old, &[])).unwrap();
    assert_eq!(repair(&path, STEREO).unwrap(), None);
    // Another format: not touched (opening it reports the mismatch).
    let mono = WavFormat {
        channels: 1,
        ..STEREO
    };
    let zero = temp_file("zero-other.wav");
    std::fs::write(&zero, wav_bytes(36, 0, &old, &[])).unwrap();
    assert_eq!(repair(&zero, mono).unwrap(), None);
    let junk = temp_file("junk.wav");
    std::fs::write(&junk, b"RIFX").unwrap();
    assert_eq!(repair(&junk, STEREO).unwrap(), None);
}
