//! Just enough HTTP/2 framing to see a client's keepalive PINGs, which
//! hyper answers without telling its caller. A client that pings is asking
//! to keep its connection; once it has proved itself, that counts as use.

/// Frame type of PING (RFC 9113 §6.7) and its ACK flag.
const PING: u8 = 0x6;
const ACK: u8 = 0x1;
const HEADER: usize = 9;

/// Walks the bytes a client sends, frame header by frame header, across
/// reads of any size.
#[derive(Debug, Clone)]
pub struct FrameScanner {
    /// Bytes still to pass over: the preface, then each frame's payload.
    skip: usize,
    header: [u8; HEADER],
    filled: usize,
}

impl FrameScanner {
    /// A scanner for a connection's bytes from its very first, the 24-byte
    /// client preface.
    pub fn at_preface() -> Self {
        Self {
            skip: super::preface::PREFACE.len(),
            header: [0; HEADER],
            filled: 0,
        }
    }

    /// The PINGs (not acknowledgements) whose headers end in `bytes`.
    pub fn pings(&mut self, mut bytes: &[u8]) -> usize {
        let mut pings = 0;
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len());
                self.skip -= n;
                bytes = &bytes[n..];
                continue;
            }
            let n = (HEADER - self.filled).min(bytes.len());
            self.header[self.filled..self.filled + n].copy_from_slice(&bytes[..n]);
            self.filled += n;
            bytes = &bytes[n..];
            if self.filled == HEADER {
                let [a, b, c, kind, flags, ..] = self.header;
                if kind == PING && flags & ACK == 0 {
                    pings += 1;
                }
                self.skip = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
                self.filled = 0;
            }
        }
        pings
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn frame(kind: u8, flags: u8, payload: usize) -> Vec<u8> {
        let mut bytes = vec![
            (payload >> 16) as u8,
            (payload >> 8) as u8,
            payload as u8,
            kind,
            flags,
            0,
            0,
            0,
            1,
        ];
        // Payload bytes that look like frame headers must not be read as
        // such.
        bytes.extend(std::iter::repeat_n(PING, payload));
        bytes
    }

    proptest! {
        /// However the stream is cut into reads, the PINGs counted are the
        /// PINGs sent.
        #[test]
        fn pings_are_counted_across_any_reads(
            frames in proptest::collection::vec((0u8..10, 0u8..4, 0usize..40), 0..30),
            cuts in proptest::collection::vec(1usize..50, 0..40),
        ) {
            let mut stream = super::super::preface::PREFACE.to_vec();
            let mut expected = 0;
            for (kind, flags, payload) in &frames {
                stream.extend(frame(*kind, *flags, *payload));
                if *kind == PING && flags & ACK == 0 {
                    expected += 1;
                }
            }
            let mut scanner = FrameScanner::at_preface();
            let mut seen = 0;
            let mut rest = stream.as_slice();
            for cut in cuts {
                let n = cut.min(rest.len());
                seen += scanner.pings(&rest[..n]);
                rest = &rest[n..];
            }
            seen += scanner.pings(rest);
            prop_assert_eq!(seen, expected);
        }
    }
}
