//! SDP (RFC 4566) for one RTP audio stream, L16 or Opus: written by the node for
//! its RTP outputs (`GET /mix.sdp`, `--sdp-file`) so ffplay, VLC and
//! GStreamer can play the mix, and read by the recorder (`--sdp FILE`).
//!
//! Only what such a session needs: the connection address (`c=`), the
//! audio media line (`m=audio PORT RTP/AVP PT`), `a=rtpmap`, `a=ptime` and,
//! for Opus (RFC 7587 §7), `a=fmtp` with `stereo`, `sprop-stereo` and
//! `useinbandfec`.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use crate::opus::OPUS_RATE;
use crate::rtp_map::{parse_encoding, Declaration, Encoding, RtpFormat, RtpMap};

/// One audio stream as SDP describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioSession {
    /// Session name (`s=`).
    pub name: String,
    /// Where the stream is sent: the receiver binds this port (and, for a
    /// multicast group, joins the address).
    pub dest: SocketAddr,
    /// The address the stream comes from (`o=`).
    pub origin: IpAddr,
    /// Payload type.
    pub payload_type: u8,
    /// L16 or Opus.
    pub encoding: Encoding,
    /// Its format (for Opus: 48000 Hz and the channels the stream carries).
    pub format: RtpFormat,
    /// Packet duration in milliseconds.
    pub ptime_ms: u32,
    /// A session id that changes when the stream's description does.
    pub session_id: u64,
}

/// Why an SDP description is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// No `m=audio` line.
    #[error("the SDP has no audio media line (m=audio PORT RTP/AVP PT)")]
    NoAudio,
    /// A malformed line.
    #[error("SDP line {line}: {why}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        why: String,
    },
    /// The payload type is neither static L16 nor declared by `a=rtpmap`.
    #[error("payload type {0} is neither L16 nor Opus (no a=rtpmap:{0} L16/RATE/CHANNELS or opus/48000/2)")]
    UnknownPayload(u8),
}

impl AudioSession {
    /// The SDP text (CRLF line ends, as RFC 4566 asks).
    pub fn to_sdp(&self) -> String {
        let ip_kind = |ip: &IpAddr| if ip.is_ipv4() { "IP4" } else { "IP6" };
        let mut s = String::new();
        let _ = write!(
            s,
            "v=0\r\no=- {id} {id} IN {ok} {origin}\r\ns={name}\r\nc=IN {ck} {dest}\r\nt=0 0\r\n",
            id = self.session_id,
            ok = ip_kind(&self.origin),
            origin = self.origin,
            name = sanitize(&self.name),
            ck = ip_kind(&self.dest.ip()),
            dest = self.dest.ip(),
        );
        let pt = self.payload_type;
        let _ = write!(s, "m=audio {} RTP/AVP {pt}\r\n", self.dest.port());
        if self.encoding == Encoding::Opus {
            // RFC 7587 §7: always opus/48000/2; mono or stereo is in fmtp.
            let stereo = u8::from(self.format.channels == 2);
            let _ = write!(
                s,
                "a=rtpmap:{pt} opus/48000/2\r\n\
                 a=fmtp:{pt} stereo={stereo}; sprop-stereo={stereo}; useinbandfec=1\r\n"
            );
        } else {
            let _ = write!(
                s,
                "a=rtpmap:{pt} L16/{}/{}\r\n",
                self.format.rate, self.format.channels
            );
        }
        let _ = write!(s, "a=ptime:{}\r\na=recvonly\r\n", self.ptime_ms);
        s
    }

    /// Reads the first audio stream of an SDP description.
    pub fn parse(text: &str) -> Result<Self, SdpError> {
        let mut name = String::new();
        let mut origin: Option<IpAddr> = None;
        let mut session_id = 0;
        let mut conn: Option<IpAddr> = None;
        let mut media: Option<(u16, u8)> = None;
        let mut media_conn: Option<IpAddr> = None;
        let mut rtpmap = RtpMap::new();
        // Opus payload types and whether their fmtp says stereo.
        let mut opus_stereo: Vec<(u8, bool)> = Vec::new();
        let mut ptime = 20;
        let mut in_audio = false;
        let mut seen_media = false;
        for (k, raw) in text.lines().enumerate() {
            let line = raw.trim_end_matches('\r');
            let err = |why: &str| SdpError::Line {
                line: k + 1,
                why: format!("{why}: {line:?}"),
            };
            let Some((key, value)) = line.split_once('=') else {
                if line.trim().is_empty() {
                    continue;
                }
                return Err(err("expected KEY=VALUE"));
            };
            match key {
                "s" if !seen_media => name = value.to_string(),
                "o" if !seen_media => {
                    let f: Vec<&str> = value.split_whitespace().collect();
                    if f.len() >= 6 {
                        session_id = f[1].parse().unwrap_or(0);
                        origin = f[5].parse().ok();
                    }
                }
                "c" => {
                    let f: Vec<&str> = value.split_whitespace().collect();
                    let ip = f
                        .get(2)
                        .and_then(|a| a.split('/').next())
                        .and_then(|a| a.parse::<IpAddr>().ok())
                        .ok_or_else(|| err("expected c=IN IP4 ADDRESS"))?;
                    if seen_media {
                        if in_audio {
                            media_conn = Some(ip);
                        }
                    } else {
                        conn = Some(ip);
                    }
                }
                "m" => {
                    seen_media = true;
                    in_audio = false;
                    let f: Vec<&str> = value.split_whitespace().collect();
                    if f.first() == Some(&"audio") && media.is_none() {
                        let port = f
                            .get(1)
                            .and_then(|p| p.split('/').next())
                            .and_then(|p| p.parse::<u16>().ok())
                            .ok_or_else(|| err("bad port"))?;
                        if f.get(2).is_none_or(|p| !p.starts_with("RTP/AVP")) {
                            return Err(err("expected the RTP/AVP profile"));
                        }
                        let pt = f
                            .get(3)
                            .and_then(|p| p.parse::<u8>().ok())
                            .filter(|&p| p < 128)
                            .ok_or_else(|| err("bad payload type"))?;
                        media = Some((port, pt));
                        in_audio = true;
                    }
                }
                "a" if in_audio || !seen_media => {
                    if let Some(map) = value.strip_prefix("rtpmap:") {
                        let (pt, encoding) = map
                            .split_once(' ')
                            .ok_or_else(|| err("expected a=rtpmap:PT ENCODING/RATE"))?;
                        let pt: u8 = pt.trim().parse().map_err(|_| err("bad payload type"))?;
                        if let Ok(d) = format!("{pt}={}", encoding.trim()).parse::<Declaration>() {
                            if d.encoding == Encoding::Opus {
                                rtpmap.apply(d);
                                opus_stereo.push((pt, false));
                            }
                        }
                        if let Ok(format) = parse_encoding(encoding.trim()) {
                            if pt >= 96 {
                                rtpmap.declare(crate::rtp_map::RtpMapEntry {
                                    payload_type: pt,
                                    format,
                                });
                            }
                        }
                    } else if let Some(fmtp) = value.strip_prefix("fmtp:") {
                        if let Some((pt, params)) = fmtp.split_once(' ') {
                            // sprop-stereo is what the sender sends; stereo
                            // what it would like to receive (RFC 7587 §7.1).
                            let stereo = params
                                .split(';')
                                .any(|p| matches!(p.trim(), "sprop-stereo=1" | "stereo=1"));
                            if let Ok(pt) = pt.trim().parse::<u8>() {
                                for entry in opus_stereo.iter_mut().filter(|e| e.0 == pt) {
                                    entry.1 = stereo;
                                }
                            }
                        }
                    } else if let Some(p) = value.strip_prefix("ptime:") {
                        ptime = p.trim().parse().map_err(|_| err("bad ptime"))?;
                    }
                }
                _ => {}
            }
        }
        let (port, payload_type) = media.ok_or(SdpError::NoAudio)?;
        let ip = media_conn.or(conn).ok_or_else(|| SdpError::Line {
            line: 0,
            why: "no connection address (c=IN IP4 ADDRESS)".into(),
        })?;
        let (encoding, format) = if rtpmap.is_opus(payload_type) {
            let stereo = opus_stereo
                .iter()
                .rev()
                .find(|e| e.0 == payload_type)
                .is_some_and(|e| e.1);
            let channels = if stereo { 2 } else { 1 };
            let format = RtpFormat {
                rate: OPUS_RATE,
                channels,
            };
            (Encoding::Opus, format)
        } else {
            let format = rtpmap
                .get(payload_type)
                .ok_or(SdpError::UnknownPayload(payload_type))?;
            (Encoding::L16, format)
        };
        Ok(Self {
            name,
            dest: SocketAddr::new(ip, port),
            origin: origin.unwrap_or(ip),
            payload_type,
            encoding,
            format,
            ptime_ms: ptime,
            session_id,
        })
    }
}

/// A session name on one line, without control characters.
fn sanitize(name: &str) -> String {
    let s: String = name.chars().filter(|c| !c.is_control()).collect();
    if s.trim().is_empty() {
        "-".into()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> AudioSession {
        AudioSession {
            name: "audionode mix".into(),
            dest: "127.0.0.1:5004".parse().unwrap(),
            origin: "127.0.0.1".parse().unwrap(),
            payload_type: 96,
            encoding: Encoding::L16,
            format: RtpFormat {
                rate: 48000,
                channels: 2,
            },
            ptime_ms: 5,
            session_id: 42,
        }
    }

    #[test]
    fn writes_and_reads_back() {
        let s = session();
        let text = s.to_sdp();
        assert_eq!(
            text,
            "v=0\r\no=- 42 42 IN IP4 127.0.0.1\r\ns=audionode mix\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio 5004 RTP/AVP 96\r\na=rtpmap:96 L16/48000/2\r\na=ptime:5\r\na=recvonly\r\n"
        );
        assert_eq!(AudioSession::parse(&text).unwrap(), s);
    }

    #[test]
    fn reads_what_ffmpeg_writes() {
        // `ffmpeg ... -f rtp rtp://127.0.0.1:5004` prints this (44.1 kHz stereo, static PT 10).
        let text = "v=0\no=- 0 0 IN IP4 127.0.0.1\ns=No Name\nc=IN IP4 127.0.0.1\nt=0 0\n\
                    a=tool:libavformat 59.27.100\nm=audio 5004 RTP/AVP 10\nb=AS:1411\n";
        let s = AudioSession::parse(text).unwrap();
        assert_eq!(s.payload_type, 10);
        assert_eq!(
            s.format,
            RtpFormat {
                rate: 44100,
                channels: 2
            }
        );
        assert_eq!(s.dest.port(), 5004);
    }

    #[test]
    fn writes_and_reads_opus() {
        let mut s = session();
        s.payload_type = 111;
        s.encoding = Encoding::Opus;
        s.format.channels = 1;
        s.ptime_ms = 10;
        let text = s.to_sdp();
        assert_eq!(
            text,
            "v=0\r\no=- 42 42 IN IP4 127.0.0.1\r\ns=audionode mix\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
             m=audio 5004 RTP/AVP 111\r\na=rtpmap:111 opus/48000/2\r\n\
             a=fmtp:111 stereo=0; sprop-stereo=0; useinbandfec=1\r\na=ptime:10\r\na=recvonly\r\n"
        );
        assert_eq!(AudioSession::parse(&text).unwrap(), s);
        s.format.channels = 2;
        assert_eq!(AudioSession::parse(&s.to_sdp()).unwrap(), s);
    }

    #[test]
    fn reads_what_ffmpeg_writes_for_opus() {
        // `ffmpeg -re -i in.wav -c:a libopus -f rtp -sdp_file s.sdp rtp://127.0.0.1:5004`.
        let text = "v=0\no=- 0 0 IN IP4 127.0.0.1\ns=No Name\nc=IN IP4 127.0.0.1\nt=0 0\n\
                    a=tool:libavformat 59.27.100\nm=audio 5004 RTP/AVP 97\nb=AS:96\n\
                    a=rtpmap:97 opus/48000/2\na=fmtp:97 sprop-stereo=1\n";
        let s = AudioSession::parse(text).unwrap();
        assert_eq!((s.payload_type, s.encoding), (97, Encoding::Opus));
        assert_eq!(
            s.format,
            RtpFormat {
                rate: 48000,
                channels: 2
            }
        );
    }

    #[test]
    fn refuses_what_it_cannot_play() {
        assert_eq!(AudioSession::parse("v=0\n"), Err(SdpError::NoAudio));
        let g722 = "v=0\nc=IN IP4 127.0.0.1\nm=audio 5004 RTP/AVP 112\na=rtpmap:112 G7221/16000\n";
        assert_eq!(
            AudioSession::parse(g722),
            Err(SdpError::UnknownPayload(112))
        );
        assert!(matches!(
            AudioSession::parse("v=0\nm=audio x RTP/AVP 10\n"),
            Err(SdpError::Line { line: 2, .. })
        ));
    }
}
