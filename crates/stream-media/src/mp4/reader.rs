//! Bounds-checked big-endian reading over an in-memory box body, and iteration over child boxes.
//!
//! Every read returns `MediaError::Truncated` instead of panicking; offsets in errors are absolute file
//! offsets so a person can find the bad byte with a hex editor.

use crate::MediaError;

/// A four-character box or sample-entry type.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct FourCc(pub [u8; 4]);

impl FourCc {
    pub const fn new(s: &[u8; 4]) -> Self {
        FourCc(*s)
    }
}

impl std::fmt::Display for FourCc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for &b in &self.0 {
            let c = if b.is_ascii_graphic() || b == b' ' {
                char::from(b)
            } else {
                '?'
            };
            write!(f, "{c}")?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for FourCc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{self}`")
    }
}

/// A cursor over bytes that were read from absolute file offset `base`.
#[derive(Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: u64,
    what: &'static str,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8], base: u64, what: &'static str) -> Self {
        Reader {
            buf,
            pos: 0,
            base,
            what,
        }
    }

    /// Absolute file offset of the next byte.
    pub fn offset(&self) -> u64 {
        self.base.saturating_add(usize_to_u64(self.pos))
    }

    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    pub fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }

    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], MediaError> {
        let end = self.pos.checked_add(n).filter(|&end| end <= self.buf.len());
        match end.and_then(|end| self.buf.get(self.pos..end)) {
            Some(slice) => {
                self.pos += n;
                Ok(slice)
            }
            None => Err(MediaError::Truncated {
                what: self.what,
                offset: self.offset(),
                need: usize_to_u64(n),
                have: usize_to_u64(self.remaining()),
            }),
        }
    }

    pub fn skip(&mut self, n: usize) -> Result<(), MediaError> {
        self.bytes(n).map(|_| ())
    }

    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], MediaError> {
        let slice = self.bytes(N)?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8, MediaError> {
        Ok(self.array::<1>()?[0])
    }

    pub fn u16(&mut self) -> Result<u16, MediaError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    pub fn u24(&mut self) -> Result<u32, MediaError> {
        let [a, b, c] = self.array()?;
        Ok(u32::from_be_bytes([0, a, b, c]))
    }

    pub fn u32(&mut self) -> Result<u32, MediaError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    pub fn i32(&mut self) -> Result<i32, MediaError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    pub fn u64(&mut self) -> Result<u64, MediaError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    pub fn i64(&mut self) -> Result<i64, MediaError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    pub fn fourcc(&mut self) -> Result<FourCc, MediaError> {
        Ok(FourCc(self.array()?))
    }

    /// Version byte and 24-bit flags of a "full box".
    pub fn version_flags(&mut self) -> Result<(u8, u32), MediaError> {
        let version = self.u8()?;
        let flags = self.u24()?;
        Ok((version, flags))
    }
}

/// One box found inside a parent: its type, its body (header stripped) and the body's absolute offset.
#[derive(Clone, Copy)]
pub struct BoxRef<'a> {
    pub kind: FourCc,
    pub body: &'a [u8],
    pub body_offset: u64,
}

impl<'a> BoxRef<'a> {
    pub fn reader(&self, what: &'static str) -> Reader<'a> {
        Reader::new(self.body, self.body_offset, what)
    }

    pub fn children(&self) -> Boxes<'a> {
        Boxes::new(self.body, self.body_offset)
    }

    /// The first child box of type `kind`.
    pub fn child(&self, kind: &[u8; 4]) -> Result<Option<BoxRef<'a>>, MediaError> {
        find(self.children(), kind)
    }

    pub fn corrupt(&self, why: impl Into<String>) -> MediaError {
        MediaError::corrupt(
            self.kind.to_string(),
            self.body_offset.saturating_sub(8),
            why,
        )
    }
}

/// The first box of type `kind` in `boxes`.
pub fn find<'a>(boxes: Boxes<'a>, kind: &[u8; 4]) -> Result<Option<BoxRef<'a>>, MediaError> {
    for b in boxes {
        let b = b?;
        if b.kind.0 == *kind {
            return Ok(Some(b));
        }
    }
    Ok(None)
}

#[derive(Clone)]
/// Iterator over the boxes packed in an in-memory buffer. Each step consumes at least 8 bytes, so it ends.
pub struct Boxes<'a> {
    reader: Reader<'a>,
    failed: bool,
}

impl<'a> Boxes<'a> {
    pub fn new(buf: &'a [u8], base: u64) -> Self {
        Boxes {
            reader: Reader::new(buf, base, "box header"),
            failed: false,
        }
    }
}

impl<'a> Iterator for Boxes<'a> {
    type Item = Result<BoxRef<'a>, MediaError>;

    fn next(&mut self) -> Option<Self::Item> {
        // Fewer than 8 bytes left is padding some writers leave (e.g. a 4-byte zero terminator in `udta`).
        if self.failed || self.reader.remaining() < 8 {
            return None;
        }
        let result = next_box(&mut self.reader);
        if result.is_err() {
            self.failed = true;
        }
        Some(result)
    }
}

fn next_box<'a>(reader: &mut Reader<'a>) -> Result<BoxRef<'a>, MediaError> {
    let start = reader.offset();
    let size32 = reader.u32()?;
    let kind = reader.fourcc()?;
    let (header_len, size) = match size32 {
        0 => (8u64, 8 + usize_to_u64(reader.remaining())),
        1 => (16, reader.u64()?),
        n => (8, u64::from(n)),
    };
    let body_len = size.checked_sub(header_len).ok_or_else(|| {
        MediaError::corrupt(
            kind.to_string(),
            start,
            format!("declared size {size} is smaller than its header"),
        )
    })?;
    let body_len = usize::try_from(body_len)
        .ok()
        .filter(|&n| n <= reader.remaining())
        .ok_or_else(|| MediaError::Truncated {
            what: "box body",
            offset: start,
            need: body_len,
            have: usize_to_u64(reader.remaining()),
        })?;
    let body_offset = reader.offset();
    let body = reader.bytes(body_len)?;
    Ok(BoxRef {
        kind,
        body,
        body_offset,
    })
}

/// Widening conversion; `usize` is at most 64 bits on every platform we build for.
pub fn usize_to_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}
