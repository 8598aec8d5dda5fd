//! One accepted connection as hyper reads it: plain or TLS, with the bytes
//! already read for the preface handed back first, and the client's PINGs
//! noticed on the way.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::activity::Activity;
use super::frames::FrameScanner;
use crate::auth::Proof;

pub enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

/// Counts a proven client's PINGs as use of the connection.
struct Pings {
    frames: FrameScanner,
    activity: Arc<Activity>,
    proof: Arc<Proof>,
}

pub struct Conn {
    io: Io,
    replay: Bytes,
    pings: Option<Pings>,
}

impl Conn {
    pub fn new(io: Io) -> Self {
        Self {
            io,
            replay: Bytes::new(),
            pings: None,
        }
    }

    /// Bytes read ahead of hyper, to be read again first.
    pub fn replay(&mut self, bytes: Bytes) {
        self.replay = bytes;
    }

    /// From now on (the connection's first byte), the client's PINGs count
    /// as activity once `proof` holds.
    pub fn watch_pings(&mut self, activity: Arc<Activity>, proof: Arc<Proof>) {
        self.pings = Some(Pings {
            frames: FrameScanner::at_preface(),
            activity,
            proof,
        });
    }

    fn scanned(&mut self, bytes: &[u8]) {
        if let Some(pings) = &mut self.pings
            && pings.frames.pings(bytes) > 0
            && pings.proof.is_proven()
        {
            pings.activity.touch();
        }
    }

    /// The raw stream, for reading the preface before hyper starts.
    pub fn io_mut(&mut self) -> &mut Io {
        &mut self.io
    }
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.replay.is_empty() {
            let n = this.replay.len().min(buf.remaining());
            let chunk = this.replay.split_to(n);
            buf.put_slice(&chunk);
            this.scanned(&chunk);
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        this.scanned(&buf.filled()[before..]);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match &self.io {
            Io::Plain(s) => s.is_write_vectored(),
            Io::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().io {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    #[tokio::test]
    async fn the_preface_is_read_again_before_the_socket() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(b" world").await.unwrap();
        });
        let (stream, _) = listener.accept().await.unwrap();
        let mut conn = Conn::new(Io::Plain(stream));
        conn.replay(Bytes::from_static(b"hello"));
        let mut read = String::new();
        conn.read_to_string(&mut read).await.unwrap();
        assert_eq!(read, "hello world");
        client.await.unwrap();
    }
}
