//! The built-in transforms: [`Builtin`], with the date formats and time zones
//! they take.
//!
//! Canonical forms are fixed, so that systems with different native forms
//! meet in the middle: numbers are JSON numbers (integral values as integers),
//! booleans are JSON booleans, dates are ISO 8601 `YYYY-MM-DD` strings, and
//! datetimes are RFC 3339 strings in UTC (`2026-03-01T09:30:00Z`, fractional
//! seconds only where there are some).

use std::fmt::{self, Write as _};
use std::str::FromStr;

use chrono::format::{Item, StrftimeItems};
use chrono::{
    DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Offset as _, SecondsFormat, Utc,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::transform::{Transform, TransformError};

/// A transform that ships with the crate. Each converts one field's values
/// between a system's native form and the canonical form, and each can be
/// written in a config file (`{ type = "date", native = "MM/DD/YYYY" }`).
///
/// | variant | native | canonical | lossy |
/// | --- | --- | --- | --- |
/// | [`Identity`](Builtin::Identity) | any | the same | no |
/// | [`StringToNumber`](Builtin::StringToNumber) | `"12.5"` | `12.5` | no |
/// | [`NumberToString`](Builtin::NumberToString) | `12.5` | `"12.5"` | no |
/// | [`StringToBool`](Builtin::StringToBool) | `"yes"` / `"no"` | `true` / `false` | no |
/// | [`Date`](Builtin::Date) | a [`DateFormat`] | `"2026-03-01"` | no |
/// | [`DateTime`](Builtin::DateTime) | a [`DateTimeFormat`] | `"2026-03-01T09:30:00Z"` | no |
/// | [`DateTimeToDate`](Builtin::DateTimeToDate) | a datetime | its date in a [`Zone`] | yes |
/// | [`DateToDateTime`](Builtin::DateToDateTime) | a date | midnight in a [`Zone`] | no |
/// | [`Scale`](Builtin::Scale) | `8` (of 10) | `4` (of 5) | when it rounds |
///
/// ```
/// use recsync::mapping::{Builtin, DateFormat, Transform};
/// use serde_json::json;
///
/// let us_date = Builtin::Date { native: DateFormat::MonthDayYear };
/// assert_eq!(us_date.to_canonical(&json!("03/01/2026"))?, json!("2026-03-01"));
/// assert_eq!(us_date.from_canonical(&json!("2026-03-01"))?, json!("03/01/2026"));
///
/// let stars = Builtin::scale(0.5).rounded(0);
/// assert_eq!(stars.to_canonical(&json!(7))?, json!(4));
/// assert!(stars.lossy());
///
/// let yes_no = Builtin::string_to_bool("yes", "no");
/// assert_eq!(yes_no.to_canonical(&json!("no"))?, json!(false));
/// assert!(yes_no.to_canonical(&json!("maybe")).is_err());
/// # Ok::<(), recsync::mapping::TransformError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum Builtin {
    /// The native value is the canonical value (a rename only).
    Identity,
    /// Native string, canonical number: `"12.5"` is `12.5`. Leading and
    /// trailing whitespace is ignored when reading; writing gives the
    /// shortest form (`12`, not `12.0`).
    StringToNumber,
    /// Native number, canonical string: `12.5` is `"12.5"`.
    NumberToString,
    /// Native string spellings, canonical boolean. Only the two spellings
    /// are read (exactly); anything else is an error.
    StringToBool {
        /// The native spelling of `true` (`"yes"`, `"1"`, `"Y"`).
        #[serde(rename = "true")]
        true_is: String,
        /// The native spelling of `false` (`"no"`, `"0"`, `"N"`).
        #[serde(rename = "false")]
        false_is: String,
    },
    /// Native date in a [`DateFormat`], canonical ISO 8601 date
    /// `YYYY-MM-DD`.
    Date {
        /// The native format.
        native: DateFormat,
    },
    /// Native datetime in a [`DateTimeFormat`], canonical RFC 3339 in UTC.
    DateTime {
        /// The native format.
        native: DateTimeFormat,
        /// The zone the system writes datetimes in, and reads datetimes
        /// that carry no offset in. Default: UTC.
        #[serde(default, skip_serializing_if = "Zone::is_utc")]
        zone: Zone,
    },
    /// Native datetime, canonical the calendar date it falls on in `zone`.
    /// Lossy: the time of day is dropped, and writing gives midnight in
    /// `zone`.
    DateTimeToDate {
        /// The native format. Default: RFC 3339.
        #[serde(default)]
        native: DateTimeFormat,
        /// The zone whose calendar decides the date.
        zone: Zone,
    },
    /// Native date, canonical the datetime of its midnight in `zone` (RFC
    /// 3339 in UTC). Writing a canonical datetime gives the date it falls on
    /// in `zone`.
    DateToDateTime {
        /// The native format. Default: ISO 8601.
        #[serde(default)]
        native: DateFormat,
        /// The zone whose midnight the date means.
        zone: Zone,
    },
    /// Native number, canonical `native * factor + offset`, optionally
    /// rounded to `round` decimals (which makes it lossy: a 10-point score
    /// as 5 stars only flows one way). Writing divides back.
    Scale {
        /// What the native value is multiplied by (finite, not zero).
        factor: f64,
        /// What is added after multiplying. Default: 0.
        #[serde(default, skip_serializing_if = "is_zero")]
        offset: f64,
        /// Decimals the canonical value is rounded to, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        round: Option<u32>,
    },
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
}

/// The native form of a date, for [`Builtin::Date`] and
/// [`Builtin::DateToDateTime`]. In config files it is written as shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub enum DateFormat {
    /// ISO 8601, `2026-03-01`.
    #[default]
    #[serde(rename = "YYYY-MM-DD")]
    Iso,
    /// US order, `03/01/2026`.
    #[serde(rename = "MM/DD/YYYY")]
    MonthDayYear,
    /// European order, `01/03/2026`.
    #[serde(rename = "DD/MM/YYYY")]
    DayMonthYear,
    /// Milliseconds since the Unix epoch at midnight UTC of the date, a JSON
    /// number (a string of digits is read too). Reading a value that is not
    /// at midnight takes its UTC date.
    #[serde(rename = "epoch_millis")]
    EpochMillis,
}

impl DateFormat {
    fn label(self) -> &'static str {
        match self {
            DateFormat::Iso => "YYYY-MM-DD date",
            DateFormat::MonthDayYear => "MM/DD/YYYY date",
            DateFormat::DayMonthYear => "DD/MM/YYYY date",
            DateFormat::EpochMillis => "date in epoch milliseconds",
        }
    }

    fn pattern(self) -> &'static str {
        match self {
            DateFormat::Iso | DateFormat::EpochMillis => "%Y-%m-%d",
            DateFormat::MonthDayYear => "%m/%d/%Y",
            DateFormat::DayMonthYear => "%d/%m/%Y",
        }
    }

    fn parse(self, value: &Value) -> Result<NaiveDate, TransformError> {
        if self == DateFormat::EpochMillis {
            let millis = epoch_millis(value)?;
            return DateTime::from_timestamp_millis(millis)
                .map(|dt| dt.date_naive())
                .ok_or_else(|| TransformError::out_of_range("not a representable date", value));
        }
        let s = value
            .as_str()
            .ok_or_else(|| TransformError::wrong_type("string", value))?;
        NaiveDate::parse_from_str(s.trim(), self.pattern())
            .map_err(|_| TransformError::unparseable(self.label(), value))
    }

    fn format(self, date: NaiveDate) -> Result<Value, TransformError> {
        if self == DateFormat::EpochMillis {
            let millis = date.and_time(NaiveTime::MIN).and_utc().timestamp_millis();
            return Ok(Value::from(millis));
        }
        Ok(Value::from(date.format(self.pattern()).to_string()))
    }
}

/// The native form of a datetime, for [`Builtin::DateTime`] and
/// [`Builtin::DateTimeToDate`]. In config files: `"rfc3339"`,
/// `"epoch_millis"`, or `{ pattern = "%d.%m.%Y %H:%M" }`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DateTimeFormat {
    /// ISO 8601 / RFC 3339 with an offset (`2026-03-01T10:30:00+01:00`).
    /// Any offset is read; the zone's offset is written.
    #[default]
    Rfc3339,
    /// Milliseconds since the Unix epoch, a JSON number (a string of digits
    /// is read too).
    EpochMillis,
    /// A chrono `strftime` pattern. Without an offset in the pattern
    /// (`%z`), values are read and written in the zone.
    Pattern(String),
}

/// A fixed offset from UTC (`UTC`, `+02:00`, `-05:30`), the time zone of a
/// date or datetime transform. Fixed offsets only: a zone with daylight
/// saving time needs a custom transform.
///
/// ```
/// use recsync::mapping::Zone;
///
/// let oslo_summer: Zone = "+02:00".parse()?;
/// assert_eq!(oslo_summer.to_string(), "+02:00");
/// assert_eq!(Zone::utc().to_string(), "UTC");
/// assert!("Europe/Oslo".parse::<Zone>().is_err());
/// # Ok::<(), recsync::mapping::ZoneError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Zone(FixedOffset);

impl Zone {
    /// UTC.
    pub fn utc() -> Self {
        Zone(Utc.fix())
    }

    /// The zone `seconds` east of UTC, if within a day.
    pub fn east(seconds: i32) -> Option<Self> {
        FixedOffset::east_opt(seconds).map(Zone)
    }

    /// The offset.
    pub fn offset(&self) -> FixedOffset {
        self.0
    }

    /// Whether this is UTC.
    pub fn is_utc(&self) -> bool {
        self.0.local_minus_utc() == 0
    }
}

impl Default for Zone {
    fn default() -> Self {
        Zone::utc()
    }
}

impl fmt::Display for Zone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_utc() {
            return f.write_str("UTC");
        }
        let secs = self.0.local_minus_utc();
        let sign = if secs < 0 { '-' } else { '+' };
        let abs = secs.unsigned_abs();
        write!(f, "{sign}{:02}:{:02}", abs / 3600, abs % 3600 / 60)
    }
}

/// A time zone that is not `UTC`, `Z` or a `+HH:MM` / `-HH:MM` offset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("zone {0:?} is not UTC or an offset like +02:00")]
pub struct ZoneError(pub String);

impl FromStr for Zone {
    type Err = ZoneError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ZoneError(s.to_owned());
        if s.eq_ignore_ascii_case("utc") || s == "Z" {
            return Ok(Zone::utc());
        }
        let (sign, rest) = match s.as_bytes().first() {
            Some(b'+') => (1, &s[1..]),
            Some(b'-') => (-1, &s[1..]),
            _ => return Err(err()),
        };
        let (h, m) = rest.split_once(':').ok_or_else(err)?;
        if h.len() != 2 || m.len() != 2 {
            return Err(err());
        }
        let h: i32 = h.parse().map_err(|_| err())?;
        let m: i32 = m.parse().map_err(|_| err())?;
        if m >= 60 {
            return Err(err());
        }
        Zone::east(sign * (h * 3600 + m * 60)).ok_or_else(err)
    }
}

impl Serialize for Zone {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Zone {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

fn epoch_millis(value: &Value) -> Result<i64, TransformError> {
    match value {
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Ok(i),
            (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(f as i64),
            _ => Err(TransformError::out_of_range(
                "epoch milliseconds are a whole number",
                value,
            )),
        },
        Value::String(s) => s
            .trim()
            .parse::<i64>()
            .map_err(|_| TransformError::unparseable("number of epoch milliseconds", value)),
        _ => Err(TransformError::wrong_type("epoch milliseconds", value)),
    }
}

fn canonical_date(value: &Value) -> Result<NaiveDate, TransformError> {
    let s = value
        .as_str()
        .ok_or_else(|| TransformError::wrong_type("string (canonical date)", value))?;
    NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d")
        .map_err(|_| TransformError::unparseable("YYYY-MM-DD date", value))
}

fn canonical_datetime(value: &Value) -> Result<DateTime<Utc>, TransformError> {
    let s = value
        .as_str()
        .ok_or_else(|| TransformError::wrong_type("string (canonical datetime)", value))?;
    DateTime::parse_from_rfc3339(s.trim())
        .map(|dt| dt.with_timezone(&Utc))
        .map_err(|_| TransformError::unparseable("RFC 3339 datetime", value))
}

fn datetime_value(dt: DateTime<Utc>) -> Value {
    Value::from(dt.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

fn pattern_items(pattern: &str) -> Result<Vec<Item<'_>>, String> {
    let items: Vec<Item<'_>> = StrftimeItems::new(pattern).collect();
    if items.iter().any(|i| matches!(i, Item::Error)) {
        Err(format!(
            "datetime pattern {pattern:?} is not a valid strftime pattern"
        ))
    } else {
        Ok(items)
    }
}

impl DateTimeFormat {
    fn label(&self) -> String {
        match self {
            DateTimeFormat::Rfc3339 => "RFC 3339 datetime".to_owned(),
            DateTimeFormat::EpochMillis => "datetime in epoch milliseconds".to_owned(),
            DateTimeFormat::Pattern(p) => format!("datetime as {p}"),
        }
    }

    fn parse(&self, zone: Zone, value: &Value) -> Result<DateTime<Utc>, TransformError> {
        match self {
            DateTimeFormat::EpochMillis => {
                let millis = epoch_millis(value)?;
                DateTime::from_timestamp_millis(millis).ok_or_else(|| {
                    TransformError::out_of_range("not a representable datetime", value)
                })
            }
            DateTimeFormat::Rfc3339 => {
                let s = value
                    .as_str()
                    .ok_or_else(|| TransformError::wrong_type("string", value))?;
                DateTime::parse_from_rfc3339(s.trim())
                    .map(|dt| dt.with_timezone(&Utc))
                    .map_err(|_| TransformError::unparseable(self.label(), value))
            }
            DateTimeFormat::Pattern(p) => {
                let s = value
                    .as_str()
                    .ok_or_else(|| TransformError::wrong_type("string", value))?;
                let s = s.trim();
                let unparseable = || TransformError::unparseable(self.label(), value);
                if let Ok(dt) = DateTime::parse_from_str(s, p) {
                    return Ok(dt.with_timezone(&Utc));
                }
                let naive = NaiveDateTime::parse_from_str(s, p)
                    .or_else(|_| {
                        NaiveDate::parse_from_str(s, p).map(|d| d.and_time(NaiveTime::MIN))
                    })
                    .map_err(|_| unparseable())?;
                naive
                    .and_local_timezone(zone.0)
                    .single()
                    .map(|dt| dt.with_timezone(&Utc))
                    .ok_or_else(unparseable)
            }
        }
    }

    fn format(&self, zone: Zone, dt: DateTime<Utc>) -> Result<Value, TransformError> {
        match self {
            DateTimeFormat::EpochMillis => Ok(Value::from(dt.timestamp_millis())),
            DateTimeFormat::Rfc3339 => Ok(Value::from(
                dt.with_timezone(&zone.0)
                    .to_rfc3339_opts(SecondsFormat::AutoSi, zone.is_utc()),
            )),
            DateTimeFormat::Pattern(p) => {
                let items = pattern_items(p).map_err(|m| TransformError::new(m, &Value::Null))?;
                let mut out = String::new();
                write!(
                    out,
                    "{}",
                    dt.with_timezone(&zone.0).format_with_items(items.iter())
                )
                .map_err(|_| {
                    TransformError::new(
                        format!("datetime pattern {p:?} cannot format this value"),
                        &datetime_value(dt),
                    )
                })?;
                Ok(Value::from(out))
            }
        }
    }
}

/// A JSON number for `f`: an integer where `f` is integral and exact.
fn number(f: f64, value: &Value) -> Result<Value, TransformError> {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e15 {
        return Ok(Value::from(f as i64));
    }
    serde_json::Number::from_f64(f)
        .map(Value::Number)
        .ok_or_else(|| TransformError::out_of_range("the result is not finite", value))
}

/// [`number`] of the result of arithmetic, with floating-point noise
/// (`0.7000000000000001`) rounded away at twelve significant digits: enough
/// for money and scores.
fn computed(f: f64, value: &Value) -> Result<Value, TransformError> {
    if !f.is_finite() {
        return Err(TransformError::out_of_range(
            "the result is not finite",
            value,
        ));
    }
    number(format!("{f:.11e}").parse::<f64>().unwrap_or(f), value)
}

/// The shortest string for a JSON number: integral floats without `.0`.
fn number_text(n: &serde_json::Number) -> String {
    if n.is_f64() {
        if let Some(f) = n.as_f64() {
            if f.fract() == 0.0 && f.abs() < 9.0e15 {
                return (f as i64).to_string();
            }
        }
    }
    n.to_string()
}

fn parse_number(s: &str, value: &Value) -> Result<Value, TransformError> {
    let s = s.trim();
    if let Ok(i) = s.parse::<i64>() {
        return Ok(Value::from(i));
    }
    if let Ok(u) = s.parse::<u64>() {
        return Ok(Value::from(u));
    }
    match s.parse::<f64>() {
        Ok(f) if f.is_finite() => number(f, value),
        _ => Err(TransformError::unparseable("number", value)),
    }
}

fn round_to(f: f64, decimals: u32) -> f64 {
    let scale = 10f64.powi(decimals.min(15) as i32);
    (f * scale).round() / scale
}

impl Builtin {
    /// [`Builtin::StringToBool`] with these spellings.
    pub fn string_to_bool(true_is: impl Into<String>, false_is: impl Into<String>) -> Self {
        Builtin::StringToBool {
            true_is: true_is.into(),
            false_is: false_is.into(),
        }
    }

    /// [`Builtin::Scale`] by `factor`, no offset, no rounding.
    pub fn scale(factor: f64) -> Self {
        Builtin::Scale {
            factor,
            offset: 0.0,
            round: None,
        }
    }

    /// A [`Scale`](Builtin::Scale) with `offset` added; other variants are
    /// returned unchanged.
    #[must_use]
    pub fn offset(self, offset: f64) -> Self {
        match self {
            Builtin::Scale { factor, round, .. } => Builtin::Scale {
                factor,
                offset,
                round,
            },
            other => other,
        }
    }

    /// A [`Scale`](Builtin::Scale) rounded to `decimals`; other variants are
    /// returned unchanged.
    #[must_use]
    pub fn rounded(self, decimals: u32) -> Self {
        match self {
            Builtin::Scale { factor, offset, .. } => Builtin::Scale {
                factor,
                offset,
                round: Some(decimals),
            },
            other => other,
        }
    }

    /// Checks the transform's own settings: a scale factor that is finite
    /// and not zero, two different boolean spellings, a valid datetime
    /// pattern. [`build`](super::FieldMapBuilder::build) reports what this
    /// returns.
    pub fn check(&self) -> Result<(), String> {
        match self {
            Builtin::Scale { factor, offset, .. } => {
                if !factor.is_finite() || *factor == 0.0 {
                    return Err(format!("scale factor {factor} is not finite and non-zero"));
                }
                if !offset.is_finite() {
                    return Err(format!("scale offset {offset} is not finite"));
                }
                Ok(())
            }
            Builtin::StringToBool { true_is, false_is } if true_is == false_is => {
                Err(format!("true and false are both spelled {true_is:?}"))
            }
            Builtin::DateTime {
                native: DateTimeFormat::Pattern(p),
                ..
            }
            | Builtin::DateTimeToDate {
                native: DateTimeFormat::Pattern(p),
                ..
            } => pattern_items(p).map(|_| ()),
            _ => Ok(()),
        }
    }
}

const SAMPLE_DATES: [(i32, u32, u32); 5] = [
    (2026, 3, 1),
    (1999, 12, 31),
    (2024, 2, 29),
    (1970, 1, 1),
    (2031, 7, 15),
];

const SAMPLE_TIMES: [(u32, u32, u32, u32); 4] = [
    (0, 0, 0, 0),
    (9, 30, 0, 0),
    (23, 59, 59, 0),
    (12, 0, 5, 250),
];

fn sample_dates() -> impl Iterator<Item = NaiveDate> {
    SAMPLE_DATES
        .iter()
        .filter_map(|(y, m, d)| NaiveDate::from_ymd_opt(*y, *m, *d))
}

fn sample_datetimes() -> Vec<DateTime<Utc>> {
    let mut out = Vec::new();
    for (date, (h, m, s, ms)) in sample_dates().zip(SAMPLE_TIMES.iter().cycle()) {
        if let Some(t) = NaiveTime::from_hms_milli_opt(*h, *m, *s, *ms) {
            out.push(date.and_time(t).and_utc());
        }
    }
    out
}

impl Transform for Builtin {
    fn name(&self) -> &str {
        match self {
            Builtin::Identity => "identity",
            Builtin::StringToNumber => "string_to_number",
            Builtin::NumberToString => "number_to_string",
            Builtin::StringToBool { .. } => "string_to_bool",
            Builtin::Date { .. } => "date",
            Builtin::DateTime { .. } => "date_time",
            Builtin::DateTimeToDate { .. } => "date_time_to_date",
            Builtin::DateToDateTime { .. } => "date_to_date_time",
            Builtin::Scale { .. } => "scale",
        }
    }

    fn to_canonical(&self, native: &Value) -> Result<Value, TransformError> {
        if native.is_null() {
            return Ok(Value::Null);
        }
        match self {
            Builtin::Identity => Ok(native.clone()),
            Builtin::StringToNumber => match native {
                Value::String(s) => parse_number(s, native),
                _ => Err(TransformError::wrong_type("string", native)),
            },
            Builtin::NumberToString => match native {
                Value::Number(n) => Ok(Value::from(number_text(n))),
                _ => Err(TransformError::wrong_type("number", native)),
            },
            Builtin::StringToBool { true_is, false_is } => match native {
                Value::String(s) if s == true_is => Ok(Value::Bool(true)),
                Value::String(s) if s == false_is => Ok(Value::Bool(false)),
                Value::String(_) => Err(TransformError::unparseable(
                    format!("{true_is:?} or {false_is:?}"),
                    native,
                )),
                _ => Err(TransformError::wrong_type("string", native)),
            },
            Builtin::Date { native: format } => {
                let d = format.parse(native)?;
                Ok(Value::from(d.format("%Y-%m-%d").to_string()))
            }
            Builtin::DateTime {
                native: format,
                zone,
            } => Ok(datetime_value(format.parse(*zone, native)?)),
            Builtin::DateTimeToDate {
                native: format,
                zone,
            } => {
                let dt = format.parse(*zone, native)?;
                let local = dt.with_timezone(&zone.0).date_naive();
                Ok(Value::from(local.format("%Y-%m-%d").to_string()))
            }
            Builtin::DateToDateTime {
                native: format,
                zone,
            } => {
                let d = format.parse(native)?;
                let midnight = d
                    .and_time(NaiveTime::MIN)
                    .and_local_timezone(zone.0)
                    .single()
                    .ok_or_else(|| TransformError::out_of_range("no midnight in zone", native))?;
                Ok(datetime_value(midnight.with_timezone(&Utc)))
            }
            Builtin::Scale {
                factor,
                offset,
                round,
            } => {
                self.check().map_err(|m| TransformError::new(m, native))?;
                let x = native
                    .as_f64()
                    .ok_or_else(|| TransformError::wrong_type("number", native))?;
                let y = x * factor + offset;
                let y = match round {
                    Some(d) => round_to(y, *d),
                    None => y,
                };
                computed(y, native)
            }
        }
    }

    fn from_canonical(&self, canonical: &Value) -> Result<Value, TransformError> {
        if canonical.is_null() {
            return Ok(Value::Null);
        }
        match self {
            Builtin::Identity => Ok(canonical.clone()),
            Builtin::StringToNumber => match canonical {
                Value::Number(n) => Ok(Value::from(number_text(n))),
                _ => Err(TransformError::wrong_type("number", canonical)),
            },
            Builtin::NumberToString => match canonical {
                Value::String(s) => parse_number(s, canonical),
                _ => Err(TransformError::wrong_type("string", canonical)),
            },
            Builtin::StringToBool { true_is, false_is } => match canonical {
                Value::Bool(true) => Ok(Value::from(true_is.as_str())),
                Value::Bool(false) => Ok(Value::from(false_is.as_str())),
                _ => Err(TransformError::wrong_type("bool", canonical)),
            },
            Builtin::Date { native: format } => format.format(canonical_date(canonical)?),
            Builtin::DateTime {
                native: format,
                zone,
            } => format.format(*zone, canonical_datetime(canonical)?),
            Builtin::DateTimeToDate {
                native: format,
                zone,
            } => {
                let d = canonical_date(canonical)?;
                let midnight = d
                    .and_time(NaiveTime::MIN)
                    .and_local_timezone(zone.0)
                    .single()
                    .ok_or_else(|| {
                        TransformError::out_of_range("no midnight in zone", canonical)
                    })?;
                format.format(*zone, midnight.with_timezone(&Utc))
            }
            Builtin::DateToDateTime {
                native: format,
                zone,
            } => {
                let dt = canonical_datetime(canonical)?;
                format.format(dt.with_timezone(&zone.0).date_naive())
            }
            Builtin::Scale { factor, offset, .. } => {
                self.check()
                    .map_err(|m| TransformError::new(m, canonical))?;
                let y = canonical
                    .as_f64()
                    .ok_or_else(|| TransformError::wrong_type("number", canonical))?;
                computed((y - offset) / factor, canonical)
            }
        }
    }

    fn lossy(&self) -> bool {
        match self {
            Builtin::DateTimeToDate { .. } => true,
            Builtin::Scale { round, .. } => round.is_some(),
            _ => false,
        }
    }

    fn samples(&self) -> Vec<Value> {
        let texts = ["0", "12", "-3", "12.5", "0.001", "123456789", "-7.25"];
        match self {
            Builtin::Identity => vec![Value::from("a"), Value::from(1), Value::Bool(true)],
            Builtin::StringToNumber => texts.iter().map(|t| Value::from(*t)).collect(),
            Builtin::NumberToString | Builtin::Scale { .. } => texts
                .iter()
                .filter_map(|t| parse_number(t, &Value::Null).ok())
                .collect(),
            Builtin::StringToBool { true_is, false_is } => {
                vec![
                    Value::from(true_is.as_str()),
                    Value::from(false_is.as_str()),
                ]
            }
            Builtin::Date { native: format } | Builtin::DateToDateTime { native: format, .. } => {
                sample_dates()
                    .filter_map(|d| format.format(d).ok())
                    .collect()
            }
            Builtin::DateTime {
                native: format,
                zone,
            } => sample_datetimes()
                .into_iter()
                .filter_map(|dt| format.format(*zone, dt).ok())
                .collect(),
            Builtin::DateTimeToDate {
                native: format,
                zone,
            } => sample_dates()
                .filter_map(|d| {
                    d.and_time(NaiveTime::MIN)
                        .and_local_timezone(zone.0)
                        .single()
                })
                .filter_map(|dt| format.format(*zone, dt.with_timezone(&Utc)).ok())
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn zones_parse_and_print() {
        assert_eq!("UTC".parse::<Zone>().unwrap(), Zone::utc());
        assert_eq!("Z".parse::<Zone>().unwrap(), Zone::utc());
        assert_eq!("+02:00".parse::<Zone>().unwrap().to_string(), "+02:00");
        assert_eq!("-05:30".parse::<Zone>().unwrap().to_string(), "-05:30");
        for bad in ["", "+2:00", "+02:60", "+25:00", "CET", "02:00"] {
            assert!(bad.parse::<Zone>().is_err(), "{bad}");
        }
    }

    #[test]
    fn samples_round_trip_for_lossless_builtins() {
        let all = [
            Builtin::Identity,
            Builtin::StringToNumber,
            Builtin::NumberToString,
            Builtin::string_to_bool("Y", "N"),
            Builtin::Date {
                native: DateFormat::DayMonthYear,
            },
            Builtin::DateTime {
                native: DateTimeFormat::Pattern("%d.%m.%Y %H:%M:%S%.3f".into()),
                zone: "+02:00".parse().unwrap(),
            },
            Builtin::DateToDateTime {
                native: DateFormat::EpochMillis,
                zone: "-05:00".parse().unwrap(),
            },
            Builtin::scale(0.01),
        ];
        for t in all {
            assert!(!t.samples().is_empty(), "{t:?}");
            for s in t.samples() {
                let c = t.to_canonical(&s).unwrap();
                assert_eq!(t.from_canonical(&c).unwrap(), s, "{t:?}");
            }
        }
    }

    #[test]
    fn invalid_settings_are_reported() {
        assert!(Builtin::scale(0.0).check().is_err());
        assert!(Builtin::scale(f64::NAN).check().is_err());
        assert!(Builtin::string_to_bool("x", "x").check().is_err());
        let bad = Builtin::DateTime {
            native: DateTimeFormat::Pattern("%Q".into()),
            zone: Zone::utc(),
        };
        assert!(bad.check().is_err());
        assert!(bad.from_canonical(&json!("2026-01-01T00:00:00Z")).is_err());
    }
}
