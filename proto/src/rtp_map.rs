//! Which audio format an RTP payload type stands for: the static L16 types
//! of RFC 3551 (10 = L16/44100/2, 11 = L16/44100/1) and dynamic types
//! (96..=127) declared as `PT=L16/RATE/CHANNELS`, as on the node's
//! `--rtp-map` and in SDP's `a=rtpmap`; and which dynamic types carry
//! RFC 2198 redundancy (`PT=red/RATE/CHANNELS`, whose blocks are of the
//! L16 types); and which carry Opus (`PT=opus/48000/2`, RFC 7587).

use std::fmt;
use std::str::FromStr;

/// Static payload type of L16 stereo at 44.1 kHz (RFC 3551).
pub const PT_L16_STEREO_44100: u8 = 10;
/// Static payload type of L16 mono at 44.1 kHz (RFC 3551).
pub const PT_L16_MONO_44100: u8 = 11;
/// First dynamic payload type.
pub const PT_DYNAMIC_MIN: u8 = 96;
/// The dynamic payload type our programs use for RFC 2198 redundancy
/// (`red/RATE/CHANNELS`) unless told otherwise.
pub const PT_RED_DEFAULT: u8 = 100;

/// The audio format of one payload type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RtpFormat {
    /// Samples per second per channel (the RTP clock rate of L16).
    pub rate: u32,
    /// 1 (mono) or 2 (stereo, interleaved left/right).
    pub channels: u16,
}

/// One payload type and its format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RtpMapEntry {
    /// The payload type.
    pub payload_type: u8,
    /// What it carries.
    pub format: RtpFormat,
}

/// Why a `PT=L16/RATE/CHANNELS` declaration is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtpMapError {
    /// Not of the form `PT=ENCODING/RATE[/CHANNELS]`.
    #[error("expected PT=L16/RATE/CHANNELS (e.g. 96=L16/48000/2), got {0:?}")]
    Syntax(String),
    /// A payload type outside the dynamic range.
    #[error("payload type {0} is not dynamic (96..=127)")]
    NotDynamic(u16),
    /// An encoding other than L16.
    #[error("encoding {0:?} is not supported (only L16)")]
    Encoding(String),
    /// A rate or channel count out of range.
    #[error("{0}")]
    Range(String),
}

impl FromStr for RtpMapEntry {
    type Err = RtpMapError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (payload_type, rest) = split_declaration(s)?;
        let format = parse_encoding(rest).map_err(|e| match e {
            RtpMapError::Syntax(_) => RtpMapError::Syntax(s.to_string()),
            e => e,
        })?;
        Ok(Self {
            payload_type,
            format,
        })
    }
}

/// Splits `PT=REST` into its dynamic payload type and `REST` (trimmed).
fn split_declaration(s: &str) -> Result<(u8, &str), RtpMapError> {
    let syntax = || RtpMapError::Syntax(s.to_string());
    let (pt, rest) = s.split_once('=').ok_or_else(syntax)?;
    let pt: u16 = pt.trim().parse().map_err(|_| syntax())?;
    if !(u16::from(PT_DYNAMIC_MIN)..=127).contains(&pt) {
        return Err(RtpMapError::NotDynamic(pt));
    }
    Ok((pt as u8, rest.trim()))
}

impl fmt::Display for RtpMapEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}=L16/{}/{}",
            self.payload_type, self.format.rate, self.format.channels
        )
    }
}

/// Parses `L16/RATE[/CHANNELS]` (SDP's encoding name is case-insensitive;
/// channels default to 1).
pub fn parse_encoding(s: &str) -> Result<RtpFormat, RtpMapError> {
    match parse_any(s)? {
        (Encoding::L16, format) => Ok(format),
        (Encoding::Red | Encoding::Opus, _) => Err(RtpMapError::Encoding(
            s.split('/').next().unwrap_or_default().into(),
        )),
    }
}

/// The encodings a payload type can be declared as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// L16 audio.
    L16,
    /// RFC 2198 redundancy whose blocks are L16 of the same rate.
    Red,
    /// Opus (RFC 7587): always declared at 48000 Hz; the channel count of
    /// the declaration is 2 whatever the audio (each packet says its own).
    Opus,
}

/// Parses `L16/RATE[/CHANNELS]` or `red/RATE[/CHANNELS]`.
fn parse_any(s: &str) -> Result<(Encoding, RtpFormat), RtpMapError> {
    let mut parts = s.split('/');
    let encoding = parts.next().unwrap_or_default();
    let rate = parts.next().ok_or_else(|| RtpMapError::Syntax(s.into()))?;
    let channels = parts.next();
    if parts.next().is_some() {
        return Err(RtpMapError::Syntax(s.into()));
    }
    let encoding = if encoding.eq_ignore_ascii_case("L16") {
        Encoding::L16
    } else if encoding.eq_ignore_ascii_case("red") {
        Encoding::Red
    } else if encoding.eq_ignore_ascii_case("opus") {
        Encoding::Opus
    } else {
        return Err(RtpMapError::Encoding(encoding.into()));
    };
    let rate: u32 = rate
        .trim()
        .parse()
        .map_err(|_| RtpMapError::Syntax(s.into()))?;
    if !(1000..=384_000).contains(&rate) {
        return Err(RtpMapError::Range(format!(
            "rate {rate} Hz is outside 1000..=384000"
        )));
    }
    let channels: u16 = match channels {
        Some(c) => c
            .trim()
            .parse()
            .map_err(|_| RtpMapError::Syntax(s.into()))?,
        None => 1,
    };
    if !(1..=2).contains(&channels) {
        return Err(RtpMapError::Range(format!(
            "{channels} channels: only mono and stereo are supported"
        )));
    }
    if encoding == Encoding::Opus && rate != crate::opus::OPUS_RATE {
        return Err(RtpMapError::Range(format!(
            "Opus is declared at 48000 Hz whatever the audio (RFC 7587), not {rate}"
        )));
    }
    Ok((encoding, RtpFormat { rate, channels }))
}

/// A declaration of a dynamic type: `PT=L16/RATE/CHANNELS`,
/// `PT=red/RATE/CHANNELS` or `PT=opus/48000/2` (the node's `--rtp-map`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Declaration {
    /// The payload type.
    pub payload_type: u8,
    /// What it carries.
    pub encoding: Encoding,
    /// Its rate and channels.
    pub format: RtpFormat,
}

impl FromStr for Declaration {
    type Err = RtpMapError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (payload_type, rest) = split_declaration(s)?;
        let (encoding, format) = parse_any(rest).map_err(|e| match e {
            RtpMapError::Syntax(_) => RtpMapError::Syntax(s.to_string()),
            RtpMapError::Encoding(name) => {
                RtpMapError::Encoding(format!("{name} (L16, red or opus)"))
            }
            e => e,
        })?;
        Ok(Self {
            payload_type,
            encoding,
            format,
        })
    }
}

/// What a dynamic payload type was declared as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    L16(RtpFormat),
    Red(RtpFormat),
    Opus,
}

/// A receiver's table of payload types: the static L16 types and the
/// declared dynamic ones (a later declaration of a type replaces an
/// earlier one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    dynamic: [Option<Slot>; 32],
}

impl RtpMap {
    /// The static types only.
    pub fn new() -> Self {
        Self {
            dynamic: [None; 32],
        }
    }

    /// The defaults for a receiver at `rate`: at 48 kHz, 96 = L16/48000/2
    /// and 97 = L16/48000/1; at any rate, 96/97 = stereo/mono at that rate,
    /// [`PT_RED_DEFAULT`] = red at that rate and
    /// [`crate::opus::PT_OPUS_DEFAULT`] = Opus (what our own programs send).
    pub fn defaults_for(rate: u32) -> Self {
        let mut map = Self::new();
        map.declare(RtpMapEntry {
            payload_type: 96,
            format: RtpFormat { rate, channels: 2 },
        });
        map.declare(RtpMapEntry {
            payload_type: 97,
            format: RtpFormat { rate, channels: 1 },
        });
        map.apply(Declaration {
            payload_type: PT_RED_DEFAULT,
            encoding: Encoding::Red,
            format: RtpFormat { rate, channels: 1 },
        });
        map.set(crate::opus::PT_OPUS_DEFAULT, Slot::Opus);
        map
    }

    /// Declares (or redeclares) a dynamic type as L16.
    pub fn declare(&mut self, entry: RtpMapEntry) {
        self.set(entry.payload_type, Slot::L16(entry.format));
    }

    /// Declares (or redeclares) a dynamic type as L16, red or Opus.
    pub fn apply(&mut self, declaration: Declaration) {
        let slot = match declaration.encoding {
            Encoding::L16 => Slot::L16(declaration.format),
            Encoding::Red => Slot::Red(declaration.format),
            Encoding::Opus => Slot::Opus,
        };
        self.set(declaration.payload_type, slot);
    }

    fn set(&mut self, pt: u8, value: Slot) {
        if let Some(slot) = self
            .dynamic
            .get_mut(usize::from(pt.wrapping_sub(PT_DYNAMIC_MIN)))
        {
            *slot = Some(value);
        }
    }

    fn slot(&self, pt: u8) -> Option<Slot> {
        *self
            .dynamic
            .get(usize::from(pt.wrapping_sub(PT_DYNAMIC_MIN)))?
    }

    /// The format of payload type `pt` when it carries RFC 2198
    /// redundancy, if it is declared so.
    pub fn red(&self, pt: u8) -> Option<RtpFormat> {
        match self.slot(pt)? {
            Slot::Red(format) => Some(format),
            Slot::L16(_) | Slot::Opus => None,
        }
    }

    /// Whether payload type `pt` is declared as Opus.
    pub fn is_opus(&self, pt: u8) -> bool {
        self.slot(pt) == Some(Slot::Opus)
    }

    /// The L16 format of payload type `pt`, if known.
    pub fn get(&self, pt: u8) -> Option<RtpFormat> {
        match pt {
            PT_L16_STEREO_44100 => Some(RtpFormat {
                rate: 44_100,
                channels: 2,
            }),
            PT_L16_MONO_44100 => Some(RtpFormat {
                rate: 44_100,
                channels: 1,
            }),
            _ => match self.slot(pt)? {
                Slot::L16(format) => Some(format),
                Slot::Red(_) | Slot::Opus => None,
            },
        }
    }
}

impl Default for RtpMap {
    fn default() -> Self {
        Self::new()
    }
}

/// The payload type a sender uses for L16 at `rate` with `channels`: the
/// static type when there is one (44.1 kHz), else 96 (stereo) or 97 (mono),
/// the defaults every receiver of ours knows.
pub fn payload_type_for(format: RtpFormat) -> u8 {
    match (format.rate, format.channels) {
        (44_100, 2) => PT_L16_STEREO_44100,
        (44_100, 1) => PT_L16_MONO_44100,
        (_, 2) => 96,
        _ => 97,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_declarations() {
        let e: RtpMapEntry = "96=L16/48000/2".parse().unwrap();
        assert_eq!(e.payload_type, 96);
        assert_eq!(
            e.format,
            RtpFormat {
                rate: 48000,
                channels: 2
            }
        );
        assert_eq!(e.to_string(), "96=L16/48000/2");
        let mono: RtpMapEntry = "127=l16/22050".parse().unwrap();
        assert_eq!(mono.format.channels, 1);
        assert!(matches!(
            "95=L16/48000/2".parse::<RtpMapEntry>(),
            Err(RtpMapError::NotDynamic(95))
        ));
        assert!(matches!(
            "96=opus/48000/2".parse::<RtpMapEntry>(),
            Err(RtpMapError::Encoding(_))
        ));
        let opus: Declaration = "109=opus/48000/2".parse().unwrap();
        assert_eq!((opus.payload_type, opus.encoding), (109, Encoding::Opus));
        assert!(matches!(
            "109=opus/44100/2".parse::<Declaration>(),
            Err(RtpMapError::Range(_))
        ));
        assert!(matches!(
            "96=L16/48000/6".parse::<RtpMapEntry>(),
            Err(RtpMapError::Range(_))
        ));
        assert!(matches!(
            "L16/48000".parse::<RtpMapEntry>(),
            Err(RtpMapError::Syntax(_))
        ));
    }

    #[test]
    fn red_is_declared_beside_l16() {
        let d: Declaration = "101=red/48000/2".parse().unwrap();
        assert_eq!(
            (d.payload_type, d.encoding, d.format.channels),
            (101, Encoding::Red, 2)
        );
        let l16: Declaration = "96=L16/48000/1".parse().unwrap();
        assert_eq!(l16.encoding, Encoding::L16);
        assert!(matches!(
            "96=G722/8000/1".parse::<Declaration>(),
            Err(RtpMapError::Encoding(_))
        ));
        // The recorder's L16-only entries refuse red.
        assert!(matches!(
            "100=red/44100/1".parse::<RtpMapEntry>(),
            Err(RtpMapError::Encoding(_))
        ));
        let mut map = RtpMap::defaults_for(44_100);
        assert_eq!(map.red(PT_RED_DEFAULT).unwrap().rate, 44_100);
        assert_eq!(map.get(PT_RED_DEFAULT), None);
        map.apply(d);
        assert_eq!(map.red(101).unwrap().rate, 48_000);
        // A redeclaration as L16 replaces red.
        map.apply("101=L16/44100/2".parse().unwrap());
        assert_eq!(map.red(101), None);
        assert_eq!(map.get(101).unwrap().channels, 2);
        assert_eq!(map.red(10), None);
    }

    #[test]
    fn static_and_dynamic_types() {
        let mut map = RtpMap::defaults_for(48000);
        assert!(map.is_opus(111) && !map.is_opus(96) && !map.is_opus(10));
        assert_eq!((map.get(111), map.red(111)), (None, None));
        assert_eq!(map.get(10).unwrap().channels, 2);
        assert_eq!(map.get(11).unwrap().rate, 44100);
        assert_eq!(map.get(97).unwrap().channels, 1);
        assert_eq!(map.get(98), None);
        assert_eq!(map.get(0), None);
        map.declare("98=L16/44100/2".parse().unwrap());
        assert_eq!(map.get(98).unwrap().rate, 44100);
        assert_eq!(
            payload_type_for(RtpFormat {
                rate: 44100,
                channels: 2
            }),
            10
        );
        assert_eq!(
            payload_type_for(RtpFormat {
                rate: 48000,
                channels: 1
            }),
            97
        );
    }
}
