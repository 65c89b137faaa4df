//! The round trip: a value written to a system the field is synced both
//! ways in reads back as itself.

use proptest::prelude::*;
use proptest::test_runner::TestError;
use serde_json::Value;

use super::case::Case;
use super::domain::{read, typed};
use super::machine::{same, shown, Object, World};
use super::{runner, CheckFailure, MapCheck, Promise};

/// Checks every field's transforms in every system the field is read from
/// and written to, with the field's values.
pub(super) fn check(obj: &Object, check: &MapCheck) -> Result<(), CheckFailure> {
    let generators = check.generators(&obj.map);
    let systems = obj.map.systems();
    for (field, spec) in obj.map.fields().iter().enumerate() {
        let pool = &obj.pools[field];
        let values = match (&generators[field], pool.is_empty()) {
            (Some(user), true) => user.clone(),
            (Some(user), false) => {
                prop_oneof![prop::sample::select(pool.clone()), user.clone()].boxed()
            }
            (None, false) => prop::sample::select(pool.clone()).boxed(),
            (None, true) => continue,
        };
        for (t, system) in systems.iter().map(|s| s.as_str()).enumerate() {
            if !spec.is_source(system) || !spec.is_target(system) {
                continue;
            }
            let Some(transform) = spec.transform(system) else {
                continue;
            };
            let trusted = obj.trusted[field];
            let lost = |c: &Value| -> Option<(Value, Option<Value>)> {
                let native = typed(spec, system, c)?;
                let back = read(spec, system, &native);
                (!same(spec, trusted, back.as_ref(), Some(c))).then_some((native, back))
            };
            let mut runner = runner(check.cases);
            let result = runner.run(&values, |c| {
                prop_assert!(lost(&c).is_none());
                Ok(())
            });
            let c = match result {
                Ok(()) => continue,
                Err(TestError::Fail(_, c)) => c,
                Err(TestError::Abort(_)) => continue,
            };
            let Some((native, back)) = lost(&c) else {
                continue;
            };
            let mut story = format!(
                "recsync's promise \"{}\" broke for {}.{}.\n\n{} is written to {system} as {} by its transform `{}`, which reads back as {}. The map syncs {} both ways with {system}, so the value is lost there: {system} and the other systems disagree from then on, or a run takes what {system} holds for a change and writes it everywhere.\n",
                Promise::RoundTrip,
                obj.map.object(),
                spec.name(),
                shown(spec, Some(&c)),
                shown(spec, Some(&native)),
                transform.name(),
                shown(spec, back.as_ref()),
                spec.name(),
            );
            story.push_str(&replay(obj, t, field, &c));
            return Err(CheckFailure::new(
                Some(obj.map.object().to_owned()),
                Promise::RoundTrip,
                story,
            ));
        }
    }
    Ok(())
}

/// The story of `canonical` typed into another system and synced.
fn replay(obj: &Object, target: usize, field: usize, canonical: &Value) -> String {
    let spec = &obj.map.fields()[field];
    let systems = obj.map.systems();
    let Some((from, native)) = systems
        .iter()
        .enumerate()
        .filter(|(s, system)| *s != target && spec.is_source(system.as_str()))
        .find_map(|(s, system)| Some((s, typed(spec, system.as_str(), canonical)?)))
    else {
        return String::new();
    };
    let case = Case {
        steps: Vec::new(),
        extra: vec![Vec::new(); obj.map.fields().len()],
        rewrites: vec![false; systems.len()],
    };
    let mut world = World::new(obj, &case, true);
    let outcome = world.replay(from, field, native);
    let mut out = format!(
        "\nWhat happens when a person types it in {}:\n",
        systems[from]
    );
    for line in world.story() {
        out.push_str(&line);
        out.push('\n');
    }
    if let Err(broken) = outcome {
        out.push_str(&format!(
            "\nThen \"{}\" breaks too: {}\n",
            broken.promise, broken.what
        ));
    }
    out
}
