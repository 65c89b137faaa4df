//! **Writes**: which systems the entity is created in, and the create and
//! update ops built from what the field steps planned.

use super::*;

impl<'c, 'a> Planner<'c, 'a> {
    /// Which systems the entity is created in.
    pub(super) fn plan_creates_targets(&mut self) {
        let rules = self.cx.map.records();
        let mode_creates = self.cx.map.match_mode() != crate::identity::MatchMode::MatchOnly;
        let is_new = self.res.change.new;
        let unsettled = self.entity.is_some_and(|e| e.unsettled);
        for t in 0..self.n() {
            if self.links[t].status.is_some() || self.create[t] {
                continue;
            }
            if !(mode_creates && rules.target[t]) {
                continue;
            }
            // From a record that is new, to systems whose records were read;
            // else where the whole system was read (so matching saw every
            // record), or read at all where a create is pending.
            let sources_new =
                is_new && (0..self.n()).any(|s| self.input.sides[s].new_link && rules.source[s]);
            if is_new && !sources_new {
                continue;
            }
            let read = self.cx.coverage(t);
            let allowed = if is_new {
                read.is_some()
            } else {
                read == Some(crate::model::Coverage::Complete) || (unsettled && read.is_some())
            };
            if allowed {
                self.create[t] = true;
            } else if read.is_none() {
                // The target was not read (no snapshot, or one a guard
                // ignored): the create waits for a read, and the entity
                // stays in every plan until then (the fast path would
                // otherwise skip it for good).
                self.unsettled = true;
            }
        }
    }

    pub(super) fn expected_version(&self, t: usize) -> Option<String> {
        self.seen[t]
            .and_then(|r| r.version.clone())
            .or_else(|| self.links[t].version.map(str::to_owned))
    }

    /// The fields a create in target `t` writes (decided values, else the
    /// canonical ones; none empty, held, waiting for schema drift or
    /// invalid), and whether it waits for a parent. `None` when a mapping
    /// failure skipped the entity.
    fn create_fields(&mut self, t: usize) -> Option<(Vec<FieldWrite>, bool)> {
        let map = self.cx.map;
        let mut fields: Vec<FieldWrite> = Vec::new();
        let mut waits = false;
        for (f, field) in map.fields().iter().enumerate() {
            if !field.target_at(t) {
                continue;
            }
            if self.waiting[f] {
                // Created without its parent, the record would be written
                // twice (and briefly wrong): it waits, parents first.
                waits = true;
                continue;
            }
            if self.held_fields[f] {
                continue;
            }
            let Some(nat) = field.shared_native_at(t) else {
                continue;
            };
            let (value, reason) = match &self.decided[f] {
                Some((v, r)) => (Cow::Borrowed(v.as_ref()), r.clone()),
                None => match self.canonical(f) {
                    Some(c) => (Cow::Owned(c.to_value()), Reason::NewRecord),
                    None => continue,
                },
            };
            if is_empty_value(&value) {
                continue;
            }
            if self.cx.field_absent(t, f) {
                // Schema drift: created without the field, which waits.
                self.unsettled = true;
                continue;
            }
            match self.write(f, t, &value) {
                Ok(native) if !self.valid(f, t, &native) => {}
                Ok(native) => fields.push(FieldWrite {
                    field: field.shared_name().clone(),
                    native: nat.clone(),
                    value: native,
                    reason,
                    sensitive: field.is_sensitive(),
                }),
                Err(fail) => {
                    let is_wait = matches!(fail, Fail::Waiting(_));
                    self.fail(t, f, fail);
                    if self.skipped {
                        return None;
                    }
                    waits |= is_wait;
                }
            }
        }
        Some((fields, waits))
    }

    pub(super) fn build_creates(&mut self) {
        let map = self.cx.map;
        for t in 0..self.n() {
            if !self.create[t] {
                continue;
            }
            let Some((fields, waits)) = self.create_fields(t) else {
                return;
            };
            for (f, field) in map.fields().iter().enumerate() {
                if field.is_required(t) && !fields.iter().any(|w| w.field == field.name()) {
                    self.issue(t, Some(f), IssueKind::MissingRequired);
                    self.blocked[t] = true;
                    self.unsettled = true;
                }
            }
            if waits || self.blocked[t] {
                continue;
            }
            if let Some(filter) = &map.records().scope[t] {
                if !filter.matches_fields(fields.iter().map(|w| (w.native.as_str(), &w.value))) {
                    self.res.held.push(Hold {
                        entity: self.input.id.clone(),
                        field: None,
                        kind: HoldKind::OutOfTargetScope {
                            system: self.systems[t].clone(),
                        },
                    });
                    // Held, not settled: every plan looks again (and says
                    // so).
                    self.unsettled = true;
                    continue;
                }
            }
            let mut h = StableHasher::new("create");
            h.str(self.systems[t].as_str());
            h.str(self.input.id.as_str());
            for w in &fields {
                h.str(&w.native);
                h.value(&w.value);
            }
            let op = WriteOp {
                id: OpId(h.finish()),
                kind: OpKind::Create,
                object: map.shared_object().clone(),
                system: self.systems[t].clone(),
                record_id: None,
                entity: self.input.id.clone(),
                expected_version: None,
                correlation: Some(self.input.id.as_str().to_owned()),
                fields,
            };
            self.push_op(op, t);
        }
    }

    pub(super) fn build_updates(&mut self) {
        for t in 0..self.n() {
            // Given back emptied: its buffer is the next entity's.
            let mut fields = std::mem::take(&mut self.writes[t]);
            if fields.is_empty() || self.blocked[t] {
                fields.clear();
                self.writes[t] = fields;
                continue;
            }
            let record_id = self.record_id(t).unwrap_or_default();
            let mut h = StableHasher::new("update");
            h.str(self.systems[t].as_str());
            h.str(&record_id);
            let mut held = Vec::with_capacity(fields.len());
            for (f, w, before) in &fields {
                h.str(&w.native);
                match before {
                    Some(Known::Val(v)) => h.value(v),
                    Some(Known::Ref(r)) => h.value(&r.to_value()),
                    None => h.opt_value(None),
                }
                h.value(&w.value);
                // What the record holds now, for a later read to confirm
                // the write by.
                let now = self.held_now(t, *f);
                held.push((t as u32, *f as u32, now));
            }
            let expected_version = self.expected_version(t);
            let mut writes = Vec::with_capacity(fields.len());
            writes.extend(fields.drain(..).map(|(_, w, _)| w));
            self.writes[t] = fields;
            let op = WriteOp {
                id: OpId(h.finish()),
                kind: OpKind::Update,
                object: self.cx.map.shared_object().clone(),
                system: self.systems[t].clone(),
                record_id: Some(record_id),
                entity: self.input.id.clone(),
                expected_version,
                correlation: None,
                fields: writes,
            };
            // A write not planned (a read-only system) awaits no
            // confirmation.
            if self.push_op(op, t) {
                self.res.change.before.extend(held);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::mapping::{Field, FieldMap};
    use crate::model::{Name, Record, Snapshot};
    use crate::{Baseline, Outcomes, SyncEngine};

    fn same(a: &Name, b: &Name) -> bool {
        a.as_str().as_ptr() == b.as_str().as_ptr()
    }

    /// Creates and updates name their object and fields by the map's own
    /// names: every op of the plan shares one allocation per name.
    #[test]
    fn ops_share_the_maps_names() {
        let map = FieldMap::builder()
            .object("contacts")
            .systems(["crm", "shop"])
            .key("email")
            .field(Field::new("email"))
            .field(Field::new("phone").native("shop", "Phone"))
            .build()
            .expect("a valid map");
        let engine = SyncEngine::new(map.clone());
        let person = |id: &str, email: &str, phone: &str| {
            Record::new(id).field("email", email).field("phone", phone)
        };
        let crm = |phone: &str| {
            Snapshot::complete(
                "crm",
                vec![person("c1", "a@x.io", phone), person("c2", "b@x.io", "2")],
            )
        };
        let mut baseline = Baseline::new();
        let plan = engine
            .plan(&baseline, &[crm("1"), Snapshot::complete("shop", vec![])])
            .expect("plan");
        let check = |plan: &crate::SyncPlan| {
            for op in &plan.ops {
                assert!(same(&op.object, map.shared_object()));
                let t = map.system_index(op.system.as_str()).expect("a system");
                for w in &op.fields {
                    let spec = map.field(&w.field).expect("a field");
                    assert!(same(&w.field, spec.shared_name()));
                    assert!(same(&w.native, spec.shared_native_at(t).expect("native")));
                }
            }
        };
        assert_eq!(plan.ops.len(), 2, "{plan}");
        assert!(plan.ops[0].fields.iter().any(|w| w.native == "Phone"));
        check(&plan);

        engine
            .commit(&mut baseline, &plan, &Outcomes::all_applied(&plan))
            .expect("commit");
        let shop = Snapshot::complete(
            "shop",
            vec![
                Record::new("s1")
                    .field("email", "a@x.io")
                    .field("Phone", "1")
                    .correlation(plan.ops[0].entity.as_str()),
                Record::new("s2")
                    .field("email", "b@x.io")
                    .field("Phone", "2")
                    .correlation(plan.ops[1].entity.as_str()),
            ],
        );
        let plan = engine.plan(&baseline, &[crm("9"), shop]).expect("plan");
        assert_eq!(plan.ops.len(), 1, "{plan}");
        assert_eq!(plan.ops[0].fields[0].native, "Phone");
        check(&plan);
    }
}
