//! Reading a type's binary form field by field (pure Rust): every read is bounds-checked, and
//! every problem is an `InvalidBinary` error "invalid binary data for type T" whose detail
//! says what was wrong where.

use crate::common::error::{Error, ErrorKind, Result};

pub struct ByteReader<'a> {
    bytes: &'a [u8],
    pos: usize,
    type_name: &'static str,
}

impl<'a> ByteReader<'a> {
    pub fn new(bytes: &'a [u8], type_name: &'static str) -> Self {
        ByteReader {
            bytes,
            pos: 0,
            type_name,
        }
    }

    /// The error for a value of this type, with `detail` saying what is wrong.
    pub fn invalid(&self, detail: impl Into<String>) -> Error {
        Error::new(
            ErrorKind::InvalidBinary,
            format!("invalid binary data for type {}", self.type_name),
        )
        .with_detail(detail)
    }

    /// The next `n` bytes, or an error naming the field that was cut short.
    pub fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| self.invalid(format!("truncated in the {what}")))?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    pub fn u8(&mut self, what: &str) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }
    pub fn u16(&mut self, what: &str) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }
    pub fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    pub fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    pub fn i64(&mut self, what: &str) -> Result<i64> {
        Ok(i64::from_le_bytes(self.array(what)?))
    }
    pub fn f64(&mut self, what: &str) -> Result<f64> {
        Ok(f64::from_le_bytes(self.array(what)?))
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// A UTF-8 string of `n` bytes.
    pub fn str(&mut self, n: usize, what: &str) -> Result<&'a str> {
        let bytes = self.take(n, what)?;
        std::str::from_utf8(bytes).map_err(|_| self.invalid(format!("the {what} is not UTF-8")))
    }

    /// Ok when every byte was read.
    pub fn finish(&self) -> Result<()> {
        match self.remaining() {
            0 => Ok(()),
            rest => Err(self.invalid(format!("{rest} trailing bytes"))),
        }
    }
}
