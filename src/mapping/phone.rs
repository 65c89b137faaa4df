//! Phone numbers compared by their E.164 form (feature `phone`):
//! [`Normalization::phone`](super::Normalization::phone) and its [`PhoneRegion`].

use std::fmt;
use std::str::FromStr;

use phonenumber::country::Id;
use phonenumber::{Mode, PhoneNumber};

use super::PHONE_PREFIX;

/// How many times a number's E.164 form is read again, looking for the
/// form that reads as itself.
const SETTLE_STEPS: usize = 4;

/// The default region of a [phone normalization](super::Normalization::phone): the
/// country a number written without a country code is read in, by its
/// ISO 3166-1 alpha-2 code (`"US"`, `"GB"`, `"DE"`).
///
/// A region the phone number metadata does not know is kept, so that
/// building the map can report it with the field
/// ([`MapProblem::UnknownPhoneRegion`](super::MapProblem::UnknownPhoneRegion));
/// used anyway, it reads only numbers written with a country code.
#[derive(Clone, PartialEq, Eq)]
pub struct PhoneRegion {
    /// `"phone:"` and the region code, upper-cased: the config name.
    name: Box<str>,
    /// The region, if the metadata knows it.
    id: Option<Id>,
}

impl PhoneRegion {
    /// The region with this code, upper-cased and trimmed (`"us"` is
    /// `"US"`).
    pub fn new(code: &str) -> Self {
        let code = code.trim().to_ascii_uppercase();
        let id = Id::from_str(&code).ok();
        PhoneRegion {
            name: format!("{PHONE_PREFIX}{code}").into_boxed_str(),
            id,
        }
    }

    /// The region code (`"US"`).
    pub fn code(&self) -> &str {
        self.name.get(PHONE_PREFIX.len()..).unwrap_or_default()
    }

    /// Whether the phone number metadata knows the region.
    pub fn is_known(&self) -> bool {
        self.id.is_some()
    }

    /// The config name: `"phone:US"`.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The form `s` is compared in: its E.164 form (`"+15550101234"`) if
    /// it reads as a phone number, else `"+"` (if it starts with one) and
    /// its digits, read again as a phone number if they make one.
    ///
    /// The result reads as itself (normalizing is idempotent): an E.164
    /// form is only taken once reading it gives it back, and digits are
    /// only kept when they do not read as a number.
    pub(crate) fn normalize(&self, s: &str) -> String {
        if let Some(e164) = self.settle(s) {
            return e164;
        }
        let t = s.trim_start();
        let mut digits = String::with_capacity(t.len());
        if t.starts_with('+') {
            digits.push('+');
        }
        digits.extend(t.chars().filter(char::is_ascii_digit));
        if digits != s {
            if let Some(e164) = self.settle(&digits) {
                return e164;
            }
        }
        digits
    }

    /// The E.164 form of `s` that reads as itself, if `s` reads as a
    /// number and such a form is reached in a few readings.
    fn settle(&self, s: &str) -> Option<String> {
        let mut form = self.e164(s)?;
        for _ in 0..SETTLE_STEPS {
            let again = self.e164(&form)?;
            if again == form {
                return Some(form);
            }
            form = again;
        }
        None
    }

    /// The E.164 form of `s` read in the region, if it reads as a number.
    ///
    /// `00` is the international call prefix ITU-T recommends and most of
    /// the world dials; in a region whose prefix is another (`011` in the
    /// US), a number written with it that is not a valid number of the
    /// region is read as international (`"001 555 010 1234"` as
    /// `"+1 555 010 1234"`).
    fn e164(&self, s: &str) -> Option<String> {
        // The parser is built for phone numbers, not for whole documents.
        if s.len() > 64 {
            return None;
        }
        let local = phonenumber::parse(self.id, s).ok();
        if let Some(rest) = s.trim_start().strip_prefix("00") {
            if !local.as_ref().is_some_and(PhoneNumber::is_valid) {
                if let Ok(n) = phonenumber::parse(None, format!("+{rest}")) {
                    return Some(format_e164(&n));
                }
            }
        }
        local.map(|n| format_e164(&n))
    }
}

fn format_e164(n: &PhoneNumber) -> String {
    n.format().mode(Mode::E164).to_string()
}

impl fmt::Debug for PhoneRegion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PhoneRegion").field(&self.code()).finish()
    }
}

impl fmt::Display for PhoneRegion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn us_forms_settle_on_e164() {
        let us = PhoneRegion::new("us");
        assert_eq!(us.code(), "US");
        assert!(us.is_known());
        for s in [
            "(555) 123-4567",
            "555-123-4567",
            "+1 555 123 4567",
            "+15551234567",
            "1-555-123-4567",
            "011 1 555 123 4567",
            "001 555 123 4567",
            " 555.123.4567 ",
        ] {
            assert_eq!(us.normalize(s), "+15551234567", "{s}");
        }
        assert_eq!(us.normalize("+44 20 7946 0958"), "+442079460958");
    }

    #[test]
    fn what_does_not_read_is_its_digits() {
        let us = PhoneRegion::new("US");
        assert_eq!(us.normalize("12"), "12");
        assert_eq!(us.normalize("ext 1-2"), "12");
        assert_eq!(us.normalize("+1 2"), "+12");
        assert_eq!(us.normalize("n/a"), "");
        // Read as digits once the words are gone.
        assert_eq!(us.normalize("call 555 123 4567 after five"), "+15551234567");
    }

    #[test]
    fn unknown_regions_read_international_numbers_only() {
        let xx = PhoneRegion::new("XX");
        assert!(!xx.is_known());
        assert_eq!(xx.code(), "XX");
        assert_eq!(xx.normalize("+1 555 123 4567"), "+15551234567");
        assert_eq!(xx.normalize("555-123-4567"), "5551234567");
        assert_eq!(format!("{xx:?}"), "PhoneRegion(\"XX\")");
    }

    #[test]
    fn normalizing_twice_changes_nothing() {
        let us = PhoneRegion::new("US");
        for s in [
            "*00062733(e)",
            "0004",
            "+440627333",
            "000(1731,02",
            "=)x000(444687818x73900,38",
        ] {
            let once = us.normalize(s);
            assert_eq!(us.normalize(&once), once, "{s}");
        }
    }
}
