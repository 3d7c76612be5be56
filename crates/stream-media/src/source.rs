//! Random-access byte sources for movies: a file read with `pread`, or bytes in memory (tests, fuzzing).

use std::io;

/// A byte source read at absolute offsets; shared by every stream of one movie, so `&self` only.
pub trait ReadAt: Send + Sync {
    /// Fill `buf` from `offset`, or fail with `UnexpectedEof` when the source is shorter.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Total length in bytes.
    fn len(&self) -> u64;
    /// True when the source holds no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl ReadAt for std::fs::File {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(self, buf, offset)
    }

    fn len(&self) -> u64 {
        // A file whose metadata cannot be read is treated as empty; opening it then fails as truncated.
        self.metadata().map(|m| m.len()).unwrap_or(0)
    }
}

impl ReadAt for bytes::Bytes {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let eof = || {
            io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "read past end of in-memory source",
            )
        };
        let start = usize::try_from(offset).map_err(|_| eof())?;
        let end = start.checked_add(buf.len()).ok_or_else(eof)?;
        let src = self.get(start..end).ok_or_else(eof)?;
        buf.copy_from_slice(src);
        Ok(())
    }

    fn len(&self) -> u64 {
        u64::try_from(<[u8]>::len(self)).unwrap_or(u64::MAX)
    }
}
