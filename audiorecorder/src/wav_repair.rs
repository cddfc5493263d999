//! Making an existing WAV file safe to append to: the data chunk's size in
//! the header is clamped to the audio really present, whatever the header
//! claims.
//!
//! The header is not to be trusted. A recorder that was killed leaves up to
//! a second of samples after the size its last header update counted; a
//! program that wrote the file to a pipe could never go back to fill in
//! the sizes, so sox and ffmpeg leave a placeholder (`0x7FFFF000`,
//! `0xFFFFFFFF`) or 0. Appending after the declared size would lose the
//! uncounted audio, or seek gigabytes past the end and leave a hole.
//!
//! So: the bytes after the `data` chunk's header are audio, unless they
//! parse exactly as further RIFF chunks (a `LIST` chunk with tags, say),
//! and whole frames of it are kept. Appending needs the audio to be the
//! last chunk, so chunks after it are dropped, and the repair says which.
//! A trailing partial frame is cut. Nothing is ever written past the end
//! of the file.

use std::fmt;
use std::fs::OpenOptions;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::wav::WavFormat;

/// What [`repair`] changed before appending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repair {
    /// The audio size the header declared, in bytes.
    pub declared: u64,
    /// Bytes after the `data` chunk's header up to the end of the file.
    pub present: u64,
    /// Bytes of whole frames kept as the recording so far.
    pub kept: u64,
    /// Bytes of a partial frame cut off the end.
    pub cut: u64,
    /// Chunks after the audio that were dropped: their id and size.
    pub dropped_chunks: Vec<(String, u64)>,
}

impl fmt::Display for Repair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the header counted {} bytes of audio, the file holds {}; kept {} bytes",
            self.declared, self.present, self.kept
        )?;
        if self.cut > 0 {
            write!(f, ", cut {} bytes of a partial frame", self.cut)?;
        }
        if !self.dropped_chunks.is_empty() {
            let chunks: Vec<String> = self
                .dropped_chunks
                .iter()
                .map(|(id, len)| format!("{id} ({len} bytes)"))
                .collect();
            write!(
                f,
                "; dropped the chunk(s) after the audio, {} (appending needs the audio last)",
                chunks.join(", ")
            )?;
        }
        Ok(())
    }
}

/// Where the `data` chunk is, and the format the `fmt ` chunk before it declares.
struct DataChunk {
    /// Channels, sample rate and bits per sample from `fmt `.
    fmt: Option<(u16, u32, u16)>,
    /// Offset of the first audio byte.
    start: u64,
    /// The size the header declares.
    declared: u64,
}

/// Clamps the `data` chunk of the file at `path`, when it holds `format`,
/// to the whole frames really present (see the module documentation).
/// Returns what was changed, or `None` when the file needed nothing, holds
/// another format, or is not a RIFF/WAVE file this can read (opening it
/// then reports why).
pub fn repair(path: &Path, format: WavFormat) -> io::Result<Option<Repair>> {
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    let len = file.metadata()?.len();
    let Some(data) = find_data(&mut file, len)? else {
        return Ok(None);
    };
    if data.fmt != Some((format.channels, format.sample_rate, 16)) {
        return Ok(None);
    }
    let block_align = 2 * u64::from(format.channels);
    let present = len - data.start;
    let declared_end = data.start + data.declared;
    let (audio, dropped_chunks) = if data.declared >= present {
        (present, Vec::new())
    } else {
        // Even sizes are padded to even, and 16-bit audio always is.
        let after = declared_end + (data.declared & 1);
        match trailing_chunks(&mut file, after, len)? {
            Some(chunks) => (data.declared, chunks),
            None => (present, Vec::new()),
        }
    };
    let block = block_align.max(1);
    // A WAV file counts sizes in u32.
    let most = (u64::from(u32::MAX) - (data.start - 8)) / block * block;
    let kept = (audio / block * block).min(most);
    let cut = audio - kept;
    if kept == data.declared && data.start + kept == len {
        return Ok(None);
    }
    file.set_len(data.start + kept)?;
    file.seek(SeekFrom::Start(4))?;
    file.write_all(&((data.start - 8 + kept) as u32).to_le_bytes())?;
    file.seek(SeekFrom::Start(data.start - 4))?;
    file.write_all(&(kept as u32).to_le_bytes())?;
    file.sync_data()?;
    Ok(Some(Repair {
        declared: data.declared,
        present,
        kept,
        cut,
        dropped_chunks,
    }))
}

/// Finds the `data` chunk, walking the chunks before it.
fn find_data<R: Read + Seek>(r: &mut R, len: u64) -> io::Result<Option<DataChunk>> {
    let mut riff = [0u8; 12];
    r.seek(SeekFrom::Start(0))?;
    if r.read_exact(&mut riff).is_err() || &riff[0..4] != b"RIFF" || &riff[8..12] != b"WAVE" {
        return Ok(None);
    }
    let mut pos = 12u64;
    let mut fmt = None;
    while pos + 8 <= len {
        let (id, size) = chunk_header(r, pos)?;
        if &id == b"fmt " && size >= 16 {
            let mut f = [0u8; 16];
            r.read_exact(&mut f)?;
            fmt = Some((
                u16::from_le_bytes([f[2], f[3]]),
                u32::from_le_bytes([f[4], f[5], f[6], f[7]]),
                u16::from_le_bytes([f[14], f[15]]),
            ));
        }
        if &id == b"data" {
            return Ok(Some(DataChunk {
                fmt,
                start: pos + 8,
                declared: size,
            }));
        }
        pos += 8 + size + (size & 1);
    }
    Ok(None)
}

/// Reads the 8-byte chunk header at `pos`.
fn chunk_header<R: Read + Seek>(r: &mut R, pos: u64) -> io::Result<([u8; 4], u64)> {
    let mut head = [0u8; 8];
    r.seek(SeekFrom::Start(pos))?;
    r.read_exact(&mut head)?;
    let size = u64::from(u32::from_le_bytes([head[4], head[5], head[6], head[7]]));
    Ok(([head[0], head[1], head[2], head[3]], size))
}

/// The chunks filling `from..len` exactly, if those bytes are chunks (ids
/// of printable ASCII, sizes that fit) rather than audio.
fn trailing_chunks<R: Read + Seek>(
    r: &mut R,
    from: u64,
    len: u64,
) -> io::Result<Option<Vec<(String, u64)>>> {
    let mut chunks = Vec::new();
    let mut pos = from;
    while pos < len {
        if pos + 8 > len {
            return Ok(None);
        }
        let (id, size) = chunk_header(r, pos)?;
        let end = pos + 8 + size;
        if !id.iter().all(|b| b.is_ascii_graphic() || *b == b' ') || end > len {
            return Ok(None);
        }
        chunks.push((String::from_utf8_lossy(&id).into_owned(), size));
        // A pad byte may or may not have been written after an odd size.
        pos = if size & 1 == 1 && end < len {
            end + 1
        } else {
            end
        };
    }
    Ok(Some(chunks))
}

#[cfg(test)]
mod tests;
