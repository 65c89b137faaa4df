//! The checker users run against their own maps
//! (`recsync::testkit::check`): the project's example config passes it,
//! and three maps whose fault is in user code `build` cannot see fail it,
//! each with a readable, shrunk story.
#![cfg(all(feature = "proptest", feature = "toml"))]

mod common;

use recsync::mapping::{MapSet, Registry};
use recsync::testkit::check::MapCheck;

const CONFIG: &str = include_str!("../examples/hubspot_salesforce.toml");

#[test]
fn the_hubspot_salesforce_example_keeps_every_promise() {
    let set = MapSet::from_toml(CONFIG, &Registry::new()).unwrap();
    let checked = MapCheck::of_set(&set).cases(common::cases(1000)).assert();
    for object in &checked.objects {
        println!(
            "{}: {} cases, {:?}",
            object.object, object.cases, object.stats
        );
        assert!(object.stats.writes > 0, "{} wrote nothing", object.object);
    }
}

mod broken {
    //! Maps `build()` accepts, whose fault is in user code it cannot see.

    use std::borrow::Cow;

    use recsync::mapping::{Normalizer, Transform, TransformError};
    use recsync::policy::{ConflictInput, ConflictResolver, Resolution};
    use recsync::testkit::check::{CheckFailure, MapCheck, Promise};
    use recsync::{ConflictPolicy, Field, FieldMap, Normalization};
    use serde_json::Value;

    /// Keeps the first ten characters: a text field the shop cuts short.
    #[derive(Debug)]
    struct FirstTen;

    impl Transform for FirstTen {
        fn name(&self) -> &str {
            "first_ten"
        }
        fn to_canonical(&self, native: &Value) -> Result<Value, TransformError> {
            Ok(native.clone())
        }
        fn from_canonical(&self, canonical: &Value) -> Result<Value, TransformError> {
            Ok(match canonical.as_str() {
                Some(s) => Value::from(s.chars().take(10).collect::<String>()),
                None => canonical.clone(),
            })
        }
    }

    /// Takes whichever candidate comes first.
    #[derive(Debug)]
    struct FirstComes;

    impl ConflictResolver for FirstComes {
        fn name(&self) -> &str {
            "first_comes"
        }
        fn resolve(&self, input: &ConflictInput<'_>) -> Resolution {
            Resolution::Take(input.candidates[0].system.clone())
        }
    }

    /// Compares names by their first word: "Ann Lee" and "Ann Smith" are
    /// one name to it, and to no person.
    #[derive(Debug)]
    struct FirstWord;

    impl Normalizer for FirstWord {
        fn name(&self) -> &str {
            "first_word"
        }
        fn normalize<'v>(&self, value: &'v Value) -> Cow<'v, Value> {
            match value.as_str() {
                Some(s) => Cow::Owned(Value::from(
                    s.split_whitespace().next().unwrap_or("").to_lowercase(),
                )),
                None => Cow::Borrowed(value),
            }
        }
    }

    fn contacts(name: Field) -> FieldMap {
        FieldMap::builder()
            .object("contacts")
            .systems(["crm", "shop"])
            .key("email")
            .field(Field::new("email").case_insensitive())
            .field(name)
            .build()
            .expect("build accepts it")
    }

    fn fails(map: &FieldMap) -> CheckFailure {
        let failure = MapCheck::new(map)
            .cases(super::common::cases(1000))
            .run()
            .expect_err("the check finds the fault");
        println!("{failure}");
        failure
    }

    /// The number of steps the history was shrunk to.
    fn steps(failure: &CheckFailure) -> usize {
        let story = failure.story();
        let at = story.find("shrunk to ").expect("a shrunk history") + "shrunk to ".len();
        story[at..]
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .expect("a number of steps")
    }

    #[test]
    fn a_transform_that_loses_data_on_a_two_way_field() {
        let map = contacts(Field::new("name").transform("shop", FirstTen));
        let failure = fails(&map);
        assert_eq!(failure.promise(), Promise::RoundTrip);
        assert_eq!(failure.object(), Some("contacts"));
        let story = failure.story();
        // The value, what the shop keeps of it, and the transform to blame.
        let at = story.find("\n\n\"").expect("the value") + 2;
        let value: String =
            serde_json::from_str(story[at..].split(" is written to shop as ").next().unwrap())
                .unwrap();
        let kept: String = value.chars().take(10).collect();
        assert!(value.chars().count() > 10, "{story}");
        assert!(
            story.contains(&format!("is written to shop as \"{kept}\" by its transform `first_ten`, which reads back as \"{kept}\"")),
            "{story}"
        );
        // What the sync does with it, run by run.
        assert!(
            story.contains(&format!("crm creates crm-1: name \"{value}\"")),
            "{story}"
        );
        assert!(
            story.contains(&format!("name := \"{kept}\"  -- changed in crm")),
            "{story}"
        );
    }

    #[test]
    fn a_resolver_that_depends_on_the_order_of_its_candidates() {
        let map = contacts(Field::new("name").policy(ConflictPolicy::custom(FirstComes)));
        let failure = fails(&map);
        assert_eq!(failure.promise(), Promise::ResolverOrder);
        let story = failure.story();
        assert!(story.contains("resolver `first_comes` on name"), "{story}");
        assert!(
            story.contains("the same candidates in another order get another answer"),
            "{story}"
        );
        assert!(
            story.contains("-> takes crm") && story.contains("-> takes shop"),
            "{story}"
        );
        // Shrunk: two candidates, the fewest a conflict has.
        let orders: Vec<&str> = story
            .lines()
            .filter(|l| l.trim_start().starts_with('['))
            .collect();
        assert_eq!(orders.len(), 2, "{story}");
        assert!(
            orders
                .iter()
                .all(|l| l.matches(" (changed ").count() + l.matches(" (no time)").count() == 2),
            "{story}"
        );
    }

    #[test]
    fn a_normalizer_that_calls_two_names_one() {
        let map = contacts(Field::new("name").normalize(Normalization::custom(FirstWord)));
        let failure = fails(&map);
        assert!(
            matches!(
                failure.promise(),
                Promise::NoLostUpdate | Promise::Convergence
            ),
            "{failure}"
        );
        let story = failure.story();
        assert!(
            story.contains("The field's normalizer `first_word` calls"),
            "{story}"
        );
        assert!(
            story.contains("equal, so a change from one to the other is not seen as a change"),
            "{story}"
        );
        // Shrunk: a record, a run, the edit, the runs that do not carry it.
        assert!(steps(&failure) <= 4, "{story}");
        assert!(story.contains(" edits "), "{story}");
    }

    /// Totals in dollars on the crm, in whole cents on the shop.
    #[derive(Debug)]
    struct Cents;

    impl Transform for Cents {
        fn name(&self) -> &str {
            "cents"
        }
        fn to_canonical(&self, native: &Value) -> Result<Value, TransformError> {
            let cents = native
                .as_i64()
                .ok_or_else(|| TransformError::wrong_type("integer", native))?;
            Ok(Value::from(cents as f64 / 100.0))
        }
        fn from_canonical(&self, canonical: &Value) -> Result<Value, TransformError> {
            let dollars = canonical
                .as_f64()
                .ok_or_else(|| TransformError::wrong_type("number", canonical))?;
            Ok(Value::from((dollars * 100.0).round() as i64))
        }
    }

    /// The pool of values the check draws by itself has no total with
    /// three decimals; a generator of the user's, for what people really
    /// type into the crm, finds that the shop cannot keep one, shrunk to
    /// the smallest.
    #[test]
    fn a_generator_of_your_own_finds_what_the_pool_does_not() {
        use proptest::prelude::*;

        let map = FieldMap::builder()
            .object("orders")
            .systems(["crm", "shop"])
            .key("number")
            .field(Field::new("number"))
            .field(Field::new("total").transform("shop", Cents))
            .build()
            .unwrap();
        MapCheck::new(&map)
            .cases(super::common::cases(256))
            .assert();
        let mills = (0i64..100_000).prop_map(|m| Value::from(m as f64 / 1000.0));
        let failure = MapCheck::new(&map)
            .values("orders", "total", mills)
            .cases(super::common::cases(256))
            .run()
            .expect_err("three decimals do not fit in cents");
        println!("{failure}");
        assert_eq!(failure.promise(), Promise::RoundTrip);
        // A total with three decimals, what the shop keeps of it, and what
        // that reads back as.
        let story = failure.story();
        let line = story
            .lines()
            .find(|l| l.contains(" is written to shop as "))
            .expect("the value");
        let typed: f64 = line.split(' ').next().unwrap().parse().unwrap();
        let cents = (typed * 100.0).round() as i64;
        assert_ne!((typed * 1000.0).round() as i64 % 10, 0, "{story}");
        let back = format!("{:?}", cents as f64 / 100.0);
        assert!(
            line.starts_with(&format!(
                "{typed} is written to shop as {cents} by its transform `cents`, which reads back as {back}."
            )),
            "{story}"
        );
    }

    #[test]
    fn the_same_normalizer_passes_once_trusted() {
        let map = contacts(Field::new("name").normalize(Normalization::custom(FirstWord)));
        let checked = MapCheck::new(&map)
            .cases(super::common::cases(256))
            .trust_normalizer("contacts", "name")
            .assert();
        assert!(checked.objects[0].stats.writes > 0);
    }
}

/// The README's "Property-test your own conflict rules" shows
/// tests/your_rules.rs as it is (without the line that compiles it only
/// with the feature on here).
#[test]
fn the_readme_shows_the_example_that_runs() {
    let readme = include_str!("../README.md");
    let example: Vec<&str> = include_str!("your_rules.rs")
        .lines()
        .filter(|l| !l.starts_with("#![cfg("))
        .collect();
    let example = example.join("\n");
    assert!(
        readme.contains(&format!("```rust\n{}\n```", example.trim())),
        "README.md's example differs from tests/your_rules.rs"
    );
}

#[test]
fn a_resolver_check_with_fewer_than_two_systems_is_refused() {
    use recsync::policy::{ConflictInput, ConflictResolver, Resolution};
    use recsync::testkit::check::{Promise, ResolverCheck};

    #[derive(Debug)]
    struct Hold;
    impl ConflictResolver for Hold {
        fn name(&self) -> &str {
            "hold"
        }
        fn resolve(&self, _: &ConflictInput<'_>) -> Resolution {
            Resolution::Hold("a person decides".into())
        }
    }
    let failure = ResolverCheck::new(Hold).systems(["crm"]).run().unwrap_err();
    assert_eq!(failure.promise(), Promise::Runs);
    assert!(failure
        .story()
        .contains("needs two systems or more; the check was given 1"));
    ResolverCheck::new(Hold).cases(64).run().unwrap();
}

/// A value map that maps two crm values to one shop value, one way: the
/// shop's "gold" is the crm's "Gold" and its "Platinum". A correct map: it
/// keeps every promise, lost answers and dead hosts included (the review
/// of the checker found both the engine and the checker wrong about it
/// once).
#[test]
fn a_many_to_one_value_map_keeps_every_promise() {
    use recsync::mapping::ValueMap;
    use recsync::{Field, FieldMap};

    let tiers = ValueMap::new()
        .both([("crm", "Gold"), ("shop", "gold")])
        .both([("crm", "Silver"), ("shop", "silver")])
        .one_way("crm", [("crm", "Platinum"), ("shop", "gold")]);
    let map = FieldMap::builder()
        .object("contacts")
        .systems(["crm", "shop"])
        .key("email")
        .field(Field::new("email").case_insensitive())
        .field(Field::new("tier").value_map(tiers))
        .build()
        .unwrap();
    let checked = MapCheck::new(&map).cases(common::cases(500)).assert();
    assert!(checked.objects[0].stats.writes > 0);
}
