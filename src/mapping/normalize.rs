//! Normalized equality: when two values count as the same for change
//! detection.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use caseless::Caseless;
use serde_json::Value;
use unicode_normalization::UnicodeNormalization;

#[cfg(feature = "phone")]
use super::phone::PhoneRegion;
#[cfg(feature = "phone")]
use super::PHONE_PREFIX;
use crate::model::is_empty_value;

/// How a field's values are compared when detecting changes.
///
/// A system that reformats a value on write (`"CA"` stored as `"ca"`, a phone
/// number with its dashes stripped) would otherwise look like it changed the
/// value, and start a sync loop. Whatever the normalization, all
/// [empty](crate::is_empty_value) values are equal to each other.
///
/// Value maps match native values with the field's normalization too, so a
/// case-insensitive field reads `"new"` by the row that says `"New"`.
///
/// Text is compared by what it says, not by how its code points spell it:
/// [`Trim`](Normalization::Trim) and
/// [`CaseInsensitive`](Normalization::CaseInsensitive) compare strings in
/// Unicode normalization form C (NFC), so `"José"` typed with a composed
/// `é` (U+00E9) equals the same name with `e` and a combining acute
/// (U+0301), as another system may have stored it. They do not use the
/// compatibility form (NFKC): it would make `"x²"` equal `"x2"` and `"ﬁ"`
/// equal `"fi"`, and match keys must never match two different values.
/// [`Exact`](Normalization::Exact) compares code points as they are. A
/// string of ASCII only takes a shortcut: it needs no Unicode tables.
///
/// In config files a normalization is written by its [name](Normalization::name):
/// `"exact"`, `"trim"`, `"case_insensitive"`, `"digits_only"`, `"numeric"`,
/// `"phone:US"` (feature `phone`), or the name of a custom [`Normalizer`]
/// supplied through a [`Registry`](super::Registry).
///
/// ```
/// use std::borrow::Cow;
/// use recsync::mapping::{Normalization, Normalizer};
/// use serde_json::{json, Value};
///
/// /// Country names and codes compare equal.
/// #[derive(Debug)]
/// struct Country;
///
/// impl Normalizer for Country {
///     fn name(&self) -> &str {
///         "country"
///     }
///     fn normalize<'v>(&self, value: &'v Value) -> Cow<'v, Value> {
///         match value.as_str().map(str::trim) {
///             Some("Norway" | "NO") => Cow::Owned(json!("NO")),
///             _ => Cow::Borrowed(value),
///         }
///     }
/// }
///
/// let n = Normalization::custom(Country);
/// assert!(n.equal(Some(&json!("Norway")), Some(&json!("NO"))));
/// assert_eq!(n.name(), "country");
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub enum Normalization {
    /// Values are equal when they are the same JSON value.
    #[default]
    Exact,
    /// Strings are compared with surrounding whitespace trimmed, in Unicode
    /// normalization form C (a composed `"é"` equals `"e\u{301}"`).
    Trim,
    /// Strings are compared trimmed and fully case-folded, in Unicode
    /// normalization form C: `" A@X "` equals `"a@x"`, `"STRASSE"` equals
    /// `"straße"`, `"ΣΊΣΥΦΟΣ"` equals `"σίσυφος"`, and a composed `"É"`
    /// equals `"e\u{301}"`.
    ///
    /// This is Unicode canonical caseless matching (Unicode 3.13, D145):
    /// lower-cased, then the full, language-independent case folding of the
    /// canonical decomposition, recomposed. Language-specific rules are not
    /// applied: Turkish dotless `"ı"` does not equal `"I"` or `"i"`, and
    /// `"İ"` (capital I with dot) equals `"i\u{307}"`, not `"i"`.
    CaseInsensitive,
    /// Strings are compared by their ASCII digits only (`"+1 (555) 010-1"`
    /// equals `"155501 01"`). For phone numbers,
    /// [`Normalization::phone`] (feature `phone`) compares by the number
    /// itself, so the same number written nationally (`"(555) 010-1234"`)
    /// and internationally (`"+1 555 010 1234"`) is equal too.
    DigitsOnly,
    /// Numbers, and strings that parse as numbers, are compared by numeric
    /// value (`1`, `1.0` and `"1"` are equal).
    Numeric,
    /// Phone numbers are compared by their E.164 form (`"+15550101234"`),
    /// read with a default region for numbers written without a country
    /// code: see [`Normalization::phone`]. Feature `phone`.
    #[cfg(feature = "phone")]
    Phone(PhoneRegion),
    /// A function you write.
    Custom(Arc<dyn Normalizer>),
}

/// A normalization you write, for [`Normalization::Custom`].
///
/// # Contract
///
/// `normalize` is a pure function: two values count as the same when their
/// normalized forms are equal JSON values. It must be idempotent
/// (normalizing a normalized value changes nothing). Empty values never
/// reach it: they are all equal to each other whatever the normalization.
pub trait Normalizer: Send + Sync + fmt::Debug {
    /// A short name, used in config files to find the normalizer in a
    /// [`Registry`](super::Registry).
    fn name(&self) -> &str;

    /// The value in the form it is compared in.
    fn normalize<'v>(&self, value: &'v Value) -> Cow<'v, Value>;
}

impl PartialEq for Normalization {
    /// Built-in normalizations are equal by kind (phone normalizations when
    /// their regions are the same too); custom ones when they are the same
    /// normalizer (the same `Arc`).
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Normalization::Custom(a), Normalization::Custom(b)) => Arc::ptr_eq(a, b),
            (Normalization::Exact, Normalization::Exact)
            | (Normalization::Trim, Normalization::Trim)
            | (Normalization::CaseInsensitive, Normalization::CaseInsensitive)
            | (Normalization::DigitsOnly, Normalization::DigitsOnly)
            | (Normalization::Numeric, Normalization::Numeric) => true,
            #[cfg(feature = "phone")]
            (Normalization::Phone(a), Normalization::Phone(b)) => a == b,
            _ => false,
        }
    }
}

impl Normalization {
    /// Whether values are compared as they are.
    pub fn is_exact(&self) -> bool {
        matches!(self, Normalization::Exact)
    }

    /// A custom normalization.
    pub fn custom(normalizer: impl Normalizer + 'static) -> Self {
        Normalization::Custom(Arc::new(normalizer))
    }

    /// The name config files use: `"exact"`, `"trim"`,
    /// `"case_insensitive"`, `"digits_only"`, `"numeric"`, `"phone:"` and
    /// the region (`"phone:US"`, feature `phone`), or a custom normalizer's
    /// own name.
    pub fn name(&self) -> &str {
        match self {
            Normalization::Exact => "exact",
            Normalization::Trim => "trim",
            Normalization::CaseInsensitive => "case_insensitive",
            Normalization::DigitsOnly => "digits_only",
            Normalization::Numeric => "numeric",
            #[cfg(feature = "phone")]
            Normalization::Phone(region) => region.name(),
            Normalization::Custom(n) => n.name(),
        }
    }

    /// The built-in normalization with this [name](Normalization::name).
    ///
    /// `"phone:"` and a region (feature `phone`) gives a phone
    /// normalization even when the region is unknown: building the map
    /// reports that, naming the field
    /// ([`MapProblem::UnknownPhoneRegion`](super::MapProblem::UnknownPhoneRegion)).
    pub fn builtin(name: &str) -> Option<Self> {
        Some(match name {
            "exact" => Normalization::Exact,
            "trim" => Normalization::Trim,
            "case_insensitive" => Normalization::CaseInsensitive,
            "digits_only" => Normalization::DigitsOnly,
            "numeric" => Normalization::Numeric,
            #[cfg(feature = "phone")]
            _ => match name.strip_prefix(PHONE_PREFIX) {
                Some(region) => Normalization::phone(region),
                None => return None,
            },
            #[cfg(not(feature = "phone"))]
            _ => return None,
        })
    }

    /// The value in the form it is compared in. A value already in that
    /// form is borrowed, not copied.
    pub fn apply<'v>(&self, value: &'v Value) -> Cow<'v, Value> {
        match (self, value) {
            (Normalization::Exact, _) => Cow::Borrowed(value),
            (Normalization::Custom(n), _) => n.normalize(value),
            (Normalization::Trim, Value::String(s)) => text_value(value, s, trim_nfc(s)),
            (Normalization::CaseInsensitive, Value::String(s)) => {
                text_value(value, s, fold_case(s))
            }
            #[cfg(feature = "phone")]
            (Normalization::Phone(region), Value::String(s)) => {
                text_value(value, s, Cow::Owned(region.normalize(s)))
            }
            #[cfg(feature = "phone")]
            (Normalization::Phone(region), Value::Number(n)) => match n.as_u64() {
                // A spreadsheet's number column: its digits.
                Some(u) => Cow::Owned(Value::from(region.normalize(&u.to_string()))),
                None => Cow::Borrowed(value),
            },
            (Normalization::DigitsOnly, Value::String(s)) => Cow::Owned(Value::from(
                s.chars().filter(char::is_ascii_digit).collect::<String>(),
            )),
            (Normalization::Numeric, Value::Number(n)) => match n.as_f64() {
                Some(f) => Cow::Owned(Value::from(f)),
                None => Cow::Borrowed(value),
            },
            (Normalization::Numeric, Value::String(s)) => match s.trim().parse::<f64>() {
                Ok(f) if f.is_finite() => Cow::Owned(Value::from(f)),
                _ => Cow::Borrowed(value),
            },
            _ => Cow::Borrowed(value),
        }
    }

    /// Whether two values count as the same. `None` (no value known) counts
    /// as `null`, so it equals every empty value.
    pub fn equal(&self, a: Option<&Value>, b: Option<&Value>) -> bool {
        let a = a.unwrap_or(&Value::Null);
        let b = b.unwrap_or(&Value::Null);
        if a == b {
            return true;
        }
        match (is_empty_value(a), is_empty_value(b)) {
            (true, true) => true,
            (true, false) | (false, true) => false,
            (false, false) => self.apply(a) == self.apply(b),
        }
    }
}

#[cfg(feature = "phone")]
impl Normalization {
    /// Phone numbers compared by their E.164 form, reading numbers written
    /// without a country code as numbers of `region` (ISO 3166-1 alpha-2:
    /// `"US"`, `"GB"`). Feature `phone`; in config files, `"phone:US"`.
    ///
    /// `"(555) 010-1234"`, `"555-010-1234"`, `"+1 555 010 1234"`,
    /// `"+15550101234"`, `"011 1 555 010 1234"` (the US international
    /// prefix) and `"001 555 010 1234"` are one number in region `"US"`;
    /// a number with its own country code (`"+44 20 7946 0958"`) is read
    /// as that country's, whatever the region. Extensions are not part of
    /// the E.164 form. A value that does not read as a phone number is
    /// compared by its digits (and a leading `+`), as
    /// [`DigitsOnly`](Normalization::DigitsOnly) would. A number too is
    /// read by its digits.
    ///
    /// An unknown region is reported when the map is built, naming the
    /// field ([`MapProblem::UnknownPhoneRegion`](super::MapProblem::UnknownPhoneRegion)).
    ///
    /// ```
    /// use recsync::mapping::Normalization;
    /// use serde_json::json;
    ///
    /// let phone = Normalization::phone("US");
    /// assert!(phone.equal(Some(&json!("(555) 010-1234")), Some(&json!("+1 555 010 1234"))));
    /// assert!(phone.equal(Some(&json!("555.010.1234")), Some(&json!("+15550101234"))));
    /// assert!(!phone.equal(Some(&json!("555-010-1234")), Some(&json!("555-010-9999"))));
    /// assert_eq!(phone.name(), "phone:US");
    /// assert_eq!(Normalization::builtin("phone:US"), Some(phone));
    /// ```
    pub fn phone(region: &str) -> Self {
        Normalization::Phone(PhoneRegion::new(region))
    }
}

/// `value` (the string `s`) when `form` is `s` unchanged, else `form`.
fn text_value<'v>(value: &'v Value, s: &str, form: Cow<'_, str>) -> Cow<'v, Value> {
    if *form == *s {
        Cow::Borrowed(value)
    } else {
        Cow::Owned(Value::from(form.into_owned()))
    }
}

/// `s` trimmed, in normalization form C. ASCII is in every normal form
/// already, so ASCII text is only trimmed.
pub(crate) fn trim_nfc(s: &str) -> Cow<'_, str> {
    let t = s.trim();
    if t.is_ascii() || unicode_normalization::is_nfc(t) {
        Cow::Borrowed(t)
    } else {
        Cow::Owned(t.nfc().collect())
    }
}

/// `s` trimmed and fully case-folded, in normalization form C: canonical
/// caseless matching (Unicode 3.13, D145), with the decomposition folded
/// and then recomposed, so that equal forms mean canonically equivalent
/// folds. ASCII text takes a shortcut with the same result: its fold is its
/// ASCII lower case.
///
/// Text is lower-cased (by the standard library) before it is folded: the
/// standard library may know newer letters than the folding tables, and
/// so the form of a string lower-cased earlier (how this normalization
/// used to compare, and the form older baselines hold) is the form of the
/// string itself.
pub(crate) fn fold_case(s: &str) -> Cow<'_, str> {
    let t = s.trim();
    if t.is_ascii() {
        if t.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(t.to_ascii_lowercase())
        } else {
            Cow::Borrowed(t)
        }
    } else {
        Cow::Owned(
            t.chars()
                .flat_map(char::to_lowercase)
                .nfd()
                .default_case_fold()
                .nfc()
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_normalization() {
        let n = Normalization::CaseInsensitive;
        assert!(n.equal(Some(&json!(" A@X ")), Some(&json!("a@x"))));
        assert!(!Normalization::Exact.equal(Some(&json!("A")), Some(&json!("a"))));
        assert!(Normalization::Trim.equal(Some(&json!("a ")), Some(&json!("a"))));
        assert!(Normalization::DigitsOnly.equal(Some(&json!("555-01")), Some(&json!("55501"))));
        assert!(Normalization::Numeric.equal(Some(&json!(1)), Some(&json!(1.0))));
        assert!(Normalization::Numeric.equal(Some(&json!("2")), Some(&json!(2))));
        assert!(Normalization::Exact.equal(None, Some(&json!(""))));
        assert!(Normalization::Exact.equal(Some(&json!([])), Some(&json!(null))));
        assert!(!Normalization::Exact.equal(None, Some(&json!(0))));
    }

    #[test]
    fn unicode_forms_and_full_folding() {
        assert_eq!(trim_nfc(" Jose\u{301} "), "Jos\u{e9}");
        assert!(matches!(trim_nfc(" plain "), Cow::Borrowed("plain")));
        assert_eq!(fold_case("STRASSE"), "strasse");
        assert_eq!(fold_case(" Stra\u{df}e "), "strasse");
        assert_eq!(fold_case("JOSE\u{301}"), "jos\u{e9}");
        assert_eq!(fold_case("\u{130}"), "i\u{307}");
        assert_eq!(fold_case("\u{131}"), "\u{131}");
        assert!(matches!(fold_case("a@x"), Cow::Borrowed("a@x")));
    }

    /// Every code point of the planes with cased letters, alone and (the
    /// alphabets) with a combining mark: the fold of its fold is its fold,
    /// and the fold of its old form (lower-cased, as case-insensitive
    /// compares used to) is its fold. (Checked on all of Unicode by hand:
    /// too slow for every test run.)
    #[test]
    fn folding_is_idempotent_and_keeps_old_forms_on_every_code_point() {
        let mut s = String::new();
        for c in (0..0x2_0000_u32).filter_map(char::from_u32) {
            let marks: &[Option<char>] = if u32::from(c) < 0x3000 {
                &[None, Some('\u{301}'), Some('\u{345}')]
            } else {
                &[None]
            };
            for &mark in marks {
                s.clear();
                s.push(c);
                s.extend(mark);
                let once = fold_case(&s).into_owned();
                assert_eq!(fold_case(&once), once, "{s:?}");
                assert_eq!(fold_case(&s.trim().to_lowercase()), once, "{s:?}");
                let nfc = trim_nfc(&s).into_owned();
                assert_eq!(trim_nfc(&nfc), nfc, "{s:?}");
            }
        }
    }
}
