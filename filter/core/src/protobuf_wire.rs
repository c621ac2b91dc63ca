//! Protobuf wire-format reading: just what meshguard decodes (Envoy's
//! dynamic metadata, ONNX models). A full protobuf runtime would cost far
//! more module size than these few wire types.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeError(pub &'static str);

pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    pub(crate) fn done(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    pub(crate) fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.bytes.get(self.pos).ok_or(DecodeError("truncated varint"))?;
            self.pos += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError("varint too long"))
    }

    pub(crate) fn take(&mut self, len: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(len).ok_or(DecodeError("length overflow"))?;
        let slice = self.bytes.get(self.pos..end).ok_or(DecodeError("truncated field"))?;
        self.pos = end;
        Ok(slice)
    }

    // Only the ONNX reader (the `classifier` feature) reads fixed32 fields.
    #[cfg_attr(not(feature = "classifier"), allow(dead_code))]
    pub(crate) fn fixed32(&mut self) -> Result<[u8; 4], DecodeError> {
        let bytes = self.take(4)?;
        let mut out = [0u8; 4];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub(crate) fn length_delimited(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = usize::try_from(self.varint()?).map_err(|_| DecodeError("length overflow"))?;
        self.take(len)
    }

    /// Reads the next tag: (field number, wire type).
    pub(crate) fn tag(&mut self) -> Result<(u64, u8), DecodeError> {
        let key = self.varint()?;
        Ok((key >> 3, (key & 7) as u8))
    }

    pub(crate) fn skip(&mut self, wire_type: u8) -> Result<(), DecodeError> {
        match wire_type {
            0 => self.varint().map(|_| ()),
            1 => self.take(8).map(|_| ()),
            2 => self.length_delimited().map(|_| ()),
            5 => self.take(4).map(|_| ()),
            _ => Err(DecodeError("unsupported wire type")),
        }
    }
}

