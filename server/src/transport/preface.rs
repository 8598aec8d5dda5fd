//! The HTTP/2 client preface and first frame, read under a deadline before
//! hyper sees the connection: hyper would wait for them forever, and a
//! connection that has sent nothing has proved nothing.

use std::io;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

pub const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const FRAME_HEADER: usize = 9;
const SETTINGS: u8 = 0x4;
/// The largest frame a client may send before it knows our settings
/// (SETTINGS_MAX_FRAME_SIZE's initial value).
const MAX_FIRST_FRAME: usize = 16_384;

#[derive(Debug, thiserror::Error)]
pub enum PrefaceError {
    #[error("the connection closed before its HTTP/2 preface")]
    Closed,
    #[error("the connection did not open with the HTTP/2 client preface")]
    NotHttp2,
    #[error("the first HTTP/2 frame is not SETTINGS")]
    NotSettings,
    #[error("the first HTTP/2 frame claims {0} bytes")]
    TooLarge(usize),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Whether `read` holds the whole preface and first frame; an error as
/// soon as the bytes so far cannot begin one.
pub fn complete(read: &[u8]) -> Result<bool, PrefaceError> {
    let prefix = read.len().min(PREFACE.len());
    if read[..prefix] != PREFACE[..prefix] {
        return Err(PrefaceError::NotHttp2);
    }
    let Some(header) = read.get(PREFACE.len()..PREFACE.len() + FRAME_HEADER) else {
        return Ok(false);
    };
    let length =
        usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
    if header[3] != SETTINGS {
        return Err(PrefaceError::NotSettings);
    }
    if length > MAX_FIRST_FRAME {
        return Err(PrefaceError::TooLarge(length));
    }
    Ok(read.len() >= PREFACE.len() + FRAME_HEADER + length)
}

/// Reads until the preface and the first frame (which must be SETTINGS)
/// have arrived, and returns every byte read, for hyper to read again.
pub async fn read_preface<R: AsyncRead + Unpin>(io: &mut R) -> Result<Bytes, PrefaceError> {
    let mut read = BytesMut::with_capacity(256);
    loop {
        if complete(&read)? {
            return Ok(read.freeze());
        }
        if io.read_buf(&mut read).await? == 0 {
            return Err(PrefaceError::Closed);
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn settings(payload: usize) -> Vec<u8> {
        let mut bytes = PREFACE.to_vec();
        bytes.extend([(payload >> 16) as u8, (payload >> 8) as u8, payload as u8]);
        bytes.extend([SETTINGS, 0, 0, 0, 0, 0]);
        bytes.extend(std::iter::repeat_n(0, payload));
        bytes
    }

    async fn read(bytes: &[u8]) -> Result<Bytes, PrefaceError> {
        read_preface(&mut &bytes[..]).await
    }

    #[tokio::test]
    async fn the_preface_and_what_follows_are_kept_for_hyper() {
        let mut sent = settings(12);
        sent.extend(b"\0\0\x08\x06\0\0\0\0\0pingpong");
        assert_eq!(read(&sent).await.unwrap(), sent.as_slice());
    }

    #[tokio::test]
    async fn anything_else_is_refused_as_soon_as_it_shows() {
        let refused = |r: Result<Bytes, PrefaceError>| r.err().map(|e| e.to_string());
        assert!(matches!(
            read(b"GET / HTTP/1.1\r\n").await,
            Err(PrefaceError::NotHttp2)
        ));
        assert!(matches!(
            read(&PREFACE[..10]).await,
            Err(PrefaceError::Closed)
        ));
        assert!(matches!(
            read(&settings(6)[..30]).await,
            Err(PrefaceError::Closed)
        ));
        let mut headers_first = PREFACE.to_vec();
        headers_first.extend([0, 0, 0, 0x1, 0, 0, 0, 0, 1]);
        assert!(matches!(
            read(&headers_first).await,
            Err(PrefaceError::NotSettings)
        ));
        let mut huge = PREFACE.to_vec();
        huge.extend([0xff, 0xff, 0xff, SETTINGS, 0, 0, 0, 0, 0]);
        assert_eq!(
            refused(read(&huge).await).as_deref(),
            Some("the first HTTP/2 frame claims 16777215 bytes")
        );
    }

    proptest! {
        #[test]
        fn a_stream_cut_anywhere_is_judged_like_the_whole(
            payload in 0usize..64,
            noise in proptest::collection::vec(any::<u8>(), 0..40),
            cut in 0usize..140,
        ) {
            let mut sent = settings(payload);
            let whole = sent.len();
            sent.extend(noise);
            let cut = cut.min(sent.len());
            let judged = complete(&sent[..cut]);
            prop_assert_eq!(judged.ok(), Some(cut >= whole));
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = complete(&bytes);
        }
    }
}
