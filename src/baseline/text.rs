//! [`Text`]: a string kept in place when it is short.
//!
//! A plan looks up every record by its native id and compares its version
//! with the link's. Both are short for most systems (`003Hs00001AbCdE`,
//! `"17"`, `2026-11-26T10:00:00Z`): kept inside the link, comparing them
//! reads no cache line beyond the link's own, where a heap string costs a
//! miss per compare at a million entities.

use std::fmt;
use std::ops::Deref;

/// Bytes kept in place: with the length and the variant's tag, the same 24
/// bytes as a `String`.
const INLINE: usize = 22;

/// An immutable string, in place up to 22 bytes, on the heap beyond.
///
/// Each string has one form (in place exactly when it fits, the unused
/// bytes zero), so equality of the forms is equality of the strings. The
/// form is private: only [`Text::new`] and `From` make one.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct Text(Form);

#[derive(Clone, PartialEq, Eq, Hash)]
enum Form {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Box<str>),
}

impl Text {
    pub(crate) fn new(s: &str) -> Self {
        match Self::inline(s.as_bytes()) {
            Some(text) => text,
            None => Text(Form::Heap(s.into())),
        }
    }

    fn inline(s: &[u8]) -> Option<Self> {
        let mut bytes = [0u8; INLINE];
        bytes.get_mut(..s.len())?.copy_from_slice(s);
        Some(Text(Form::Inline {
            len: s.len() as u8,
            bytes,
        }))
    }

    /// The UTF-8 bytes, read without checking them again.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            Form::Inline { len, bytes } => bytes.get(..usize::from(*len)).unwrap_or_default(),
            Form::Heap(s) => s.as_bytes(),
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        match &self.0 {
            // The bytes were copied from a `str`: this never fails.
            Form::Inline { .. } => std::str::from_utf8(self.as_bytes()).unwrap_or_default(),
            Form::Heap(s) => s,
        }
    }

    /// Bytes held on the heap.
    pub(crate) fn heap_len(&self) -> usize {
        match &self.0 {
            Form::Inline { .. } => 0,
            Form::Heap(s) => s.len(),
        }
    }

    /// Whether this is `s`, comparing bytes only.
    pub(crate) fn is(&self, s: &str) -> bool {
        self.as_bytes() == s.as_bytes()
    }
}

impl Deref for Text {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Self {
        Text::new(s)
    }
}

impl From<String> for Text {
    fn from(s: String) -> Self {
        Self::inline(s.as_bytes()).unwrap_or_else(|| Text(Form::Heap(s.into_boxed_str())))
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_strings_are_in_place_and_long_ones_on_the_heap() {
        for s in [
            "",
            "1",
            "crm:c42",
            "2026-11-26T10:00:00Z",
            "ü and ß: 22 bytes!!",
        ] {
            let t = Text::from(s);
            assert!(
                s.len() > INLINE || matches!(t.0, Form::Inline { .. }),
                "{s}"
            );
            assert_eq!(t.as_str(), s);
            assert!(t.is(s));
            assert_eq!(t, Text::from(s.to_owned()));
        }
        let long = "a-record-id-of-23-bytes";
        assert_eq!(long.len(), INLINE + 1);
        let t = Text::from(long);
        assert!(matches!(t.0, Form::Heap(_)));
        assert_eq!((t.heap_len(), Text::from("1").heap_len()), (INLINE + 1, 0));
        assert_eq!(&*t, long);
        assert_eq!(t, Text::from(long.to_owned()));
        assert!(!t.is("a-record-id-of-23-byte"));
        assert!(!Text::from("1").is("10"));
        assert_eq!(std::mem::size_of::<Text>(), 24);
        assert_eq!(std::mem::size_of::<Option<Text>>(), 24);
    }
}
