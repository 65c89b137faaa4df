//! The runner's side of the [journal](crate::journal): what each commit
//! wrote, kept with the baseline; a run taken back; a field's history.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::calls::Run;
use super::execute;
use super::{tally, RunError, SyncEvent, SyncReport, SyncRunner};
use crate::baseline::Baseline;
use crate::connector::{ConnectorError, ErrorKind};
use crate::engine::{CommitError, CommitSummary, OpOutcome, Outcomes, PlanOptions};
use crate::journal::{history, FieldChange, JournalBatch, JournalEntry, JournalQuery, RunId};
use crate::model::{Snapshot, SystemId};
use crate::plan::{OpKind, SyncPlan, WriteOp};

/// What [`SyncRunner::undo`] did: the run's report and the undo plan it
/// executed, whose [`held`](SyncPlan::held) lists every value it did not
/// take back, and why (changed since, gone, kept out of the journal).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Undone {
    /// The undo's report, like any run's (its [`run`](SyncReport::run)
    /// names the undo itself, which can be undone in turn).
    pub report: SyncReport,
    /// The plan executed.
    pub plan: SyncPlan,
}

impl SyncRunner {
    /// The records `ops` delete, as read, for the journal to take their
    /// values before from (an update's are kept by its plan; a create's
    /// record was not there): none where no journal is kept.
    pub(super) fn journal_reads(&self, ops: &[&WriteOp], snapshots: &[Snapshot]) -> Vec<Snapshot> {
        if self.journal.is_none() {
            return Vec::new();
        }
        let wanted: HashSet<(&str, &str)> = ops
            .iter()
            .filter(|op| op.kind == OpKind::Delete)
            .filter_map(|op| Some((op.system.as_str(), op.record_id.as_deref()?)))
            .collect();
        snapshots
            .iter()
            .map(|s| {
                let records = s
                    .records
                    .iter()
                    .filter(|r| wanted.contains(&(s.system.as_str(), r.id.as_str())))
                    .cloned()
                    .collect();
                Snapshot::partial(s.system.clone(), records)
            })
            .collect()
    }

    /// Commits `plan`'s `outcomes` into `baseline` and, where a journal is
    /// kept, puts the journal of the commit on its summary, for the store
    /// to save with the baseline (values before from `read` and the
    /// baseline as it was).
    pub(super) fn commit_journaled(
        &self,
        baseline: &mut Baseline,
        plan: &SyncPlan,
        outcomes: &Outcomes,
        read: &[Snapshot],
        run: RunId,
    ) -> Result<CommitSummary, CommitError> {
        let batch = self.journal.map(|retention| {
            let batch = JournalBatch::of_commit(
                self.engine.map(),
                baseline,
                plan,
                outcomes,
                read,
                run,
                self.clock.now(),
            );
            Arc::new(batch.retention(retention))
        });
        let mut summary = self.engine.commit(baseline, plan, outcomes)?;
        summary.journal = batch;
        Ok(summary)
    }

    /// The journal entries the store keeps for this runner's object (its
    /// shard's, for a runner on a shard) that `query` asks for.
    ///
    /// A field the map marks sensitive now is marked so in the entries
    /// given, whatever it was when they were written: its values are not
    /// printed.
    pub async fn journal(&self, query: &JournalQuery) -> Result<Vec<JournalEntry>, RunError> {
        let mut entries = self.store.journal(&self.state, query).await?;
        let map = self.engine.map();
        for e in &mut entries {
            for f in &mut e.fields {
                f.sensitive |= map.field(&f.field).is_some_and(|spec| spec.is_sensitive());
            }
        }
        Ok(entries)
    }

    /// What recsync wrote to `field` (canonical or native name) of
    /// `record_id` in `system`, oldest first: when, which run, from what,
    /// to what, and why (the system whose change it was, the rule that won,
    /// the review, the undo). Within the journal's retention.
    pub async fn history(
        &self,
        system: &str,
        record_id: &str,
        field: &str,
    ) -> Result<Vec<FieldChange>, RunError> {
        let entries = self
            .journal(&JournalQuery::record(system, record_id))
            .await?;
        Ok(history(&entries, system, record_id, field))
    }

    /// Plans the undo of `run` (a [`SyncReport::run`]) as
    /// [`undo`](Self::undo) would, and returns the plan: nothing is
    /// written and nothing saved. See
    /// [`SyncEngine::plan_undo`](crate::SyncEngine::plan_undo) for what it
    /// takes back and what it holds.
    pub async fn plan_undo(&self, run: RunId) -> Result<SyncPlan, RunError> {
        self.undo_run(run, true).await.map(|u| u.plan)
    }

    /// Takes back what `run` wrote, three ways: a field still holding
    /// what the run wrote goes back to its value before the run; one
    /// changed since is held, never overwritten; a record the run created
    /// is deleted (unless changed since), one it deleted is created again
    /// ([`SyncEngine::plan_undo`](crate::SyncEngine::plan_undo)).
    ///
    /// The undo is a run: it reads the records the run wrote (each system
    /// whole where the run deleted records there, or its connector cannot
    /// fetch by ids), plans, passes the map's delete and emptied-field
    /// guards (a refusal is approved with [`approve`](Self::approve), and
    /// the undo asked for again), executes, commits, and is journaled
    /// itself under a run id of its own. An undo of an undone run finds
    /// nothing left to do.
    ///
    /// The canonical values stay what the run made them: the next run finds
    /// the records written back behind and writes them again, through the
    /// map as it is then. Fix the map first.
    pub async fn undo(&self, run: RunId) -> Result<Undone, RunError> {
        self.undo_run(run, false).await
    }

    async fn undo_run(&self, undone: RunId, dry: bool) -> Result<Undone, RunError> {
        let _running = self.running.lock().await;
        let (run, mut report) = self.start(dry);
        let started = report.started_at;
        // The whole journal: the run's entries, and those of earlier undos
        // of it (a record one created again, gone since, stays gone).
        let entries = self
            .store
            .journal(&self.state, &JournalQuery::all())
            .await?;
        let written: Vec<&JournalEntry> = entries.iter().filter(|e| e.run == undone).collect();
        if written.is_empty() {
            return Err(RunError::NotJournaled { run: undone });
        }
        let mut baseline = self.store.load(&self.state).await?;
        let current = self.read_written(run, &mut report, &written).await?;
        drop(written);

        let approvals = std::mem::take(&mut *self.approvals());
        let mut options = PlanOptions::new();
        for a in &approvals {
            options = options.approve_stage(*a);
        }
        let plan = self
            .engine
            .plan_undo(&baseline, undone, &entries, &current, &options);
        report.held = plan.held.len();
        report.refusal = plan.refusal.clone();
        for op in &plan.ops {
            if let Some(s) = report.system_mut(&op.system) {
                s.planned.add(op.kind);
            }
        }
        self.emit(SyncEvent::Planned {
            ops: plan.ops.len(),
            conflicts: 0,
            held: plan.held.len(),
            issues: 0,
        });
        if dry {
            return Ok(Undone {
                report: self.finish(report),
                plan,
            });
        }
        let run_id = RunId::of(started, baseline.revision().saturating_add(1));
        // Before anything is written, the baseline takes the undo as made,
        // each write awaiting a read to confirm it: a run that reads the
        // systems after a crash mid-undo, or after the save below fails,
        // confirms each write or finds it not made, and never reads a value
        // put back as a person's edit, nor a record deleted as deleted by
        // a person. (The records created again are not linked either way.)
        // Once written, the undo is committed again from the baseline as it
        // was, with what really happened (a write refused is not awaited),
        // as the revision after.
        let mut assumed = Outcomes::new();
        for op in plan.ops.iter().filter(|op| op.kind != OpKind::Create) {
            assumed.record(op.id, OpOutcome::applied());
        }
        let original = baseline.clone();
        let taken = self.engine.commit(&mut baseline, &plan, &assumed)?;
        self.save(baseline, taken.clone(), false).await?;
        let mut baseline = original;
        report.run = Some(run_id);

        let ops: Vec<&WriteOp> = plan.ops.iter().collect();
        let prior = self.prior_reads(&ops, &current);
        let read = self.journal_reads(&ops, &current);
        drop(current);
        // `outcomes`: what is known made, for the journal; `settled`: for
        // the commit, a write whose call failed in a way that may have
        // made it (a dropped connection, a timeout) still awaited, as it
        // was taken: the next read tells.
        let mut outcomes = Outcomes::new();
        let mut settled = Outcomes::new();
        for done in self.execute(run, &ops, &baseline, &prior).await {
            self.count_retries(&mut report, done.system, done.retries);
            for (op, result) in done.results {
                tally(&mut report, op, &result);
                let unknown = op.kind != OpKind::Create
                    && matches!(
                        &result,
                        Err(e) if matches!(e.kind(), ErrorKind::Transient | ErrorKind::TimedOut)
                    );
                let outcome = execute::outcome(&done.shown, op, result);
                if unknown {
                    settled.record(op.id, OpOutcome::applied());
                } else {
                    settled.record(op.id, outcome.clone());
                }
                outcomes.record(op.id, outcome);
            }
        }
        drop(ops);
        // What was made goes in the journal, saved as the next revision.
        let batch = self.journal.map(|retention| {
            let batch = JournalBatch::of_commit(
                self.engine.map(),
                &baseline,
                &plan,
                &outcomes,
                &read,
                run_id,
                self.clock.now(),
            );
            Arc::new(batch.retention(retention))
        });
        let mut summary = self.engine.commit(&mut baseline, &plan, &settled)?;
        baseline.bump_revision();
        // Written over the revision taken as made: every entity either
        // commit changed.
        for id in taken.touched {
            if !summary.touched.contains(&id) {
                summary.touched.push(id);
            }
        }
        for id in taken.removed {
            if !summary.removed.contains(&id) && !summary.touched.contains(&id) {
                summary.removed.push(id);
            }
        }
        summary.ambiguous |= taken.ambiguous;
        summary.journal = batch;
        self.save(baseline, summary, false).await?;
        Ok(Undone {
            report: self.finish(report),
            plan,
        })
    }

    /// Reads what each system holds now of the records the journal
    /// `entries` name: by id where the connector can, whole where it cannot
    /// or where the run deleted records (an earlier undo may have created
    /// them again, under new ids).
    async fn read_written(
        &self,
        run: Run,
        report: &mut SyncReport,
        entries: &[&JournalEntry],
    ) -> Result<Vec<Snapshot>, RunError> {
        let mut ids: HashMap<&SystemId, Vec<String>> = HashMap::new();
        let mut whole: HashSet<&SystemId> = HashSet::new();
        for e in entries {
            ids.entry(&e.system).or_default().push(e.record_id.clone());
            if e.kind == OpKind::Delete {
                whole.insert(&e.system);
            }
        }
        let mut snapshots = Vec::new();
        for (s, connector) in self.connectors.iter().enumerate() {
            let system = &self.systems[s];
            let Some(wanted) = ids.get_mut(system) else {
                continue;
            };
            wanted.sort_unstable();
            wanted.dedup();
            let by_ids = connector.capabilities().fetch_by_ids && !whole.contains(system);
            let (read, retries) = if self.past(run) {
                let late = ConnectorError::timed_out("not read: the run's deadline passed");
                (Err(late), 0)
            } else {
                let wanted = &*wanted;
                self.with_retry(run, system, || async move {
                    self.permit(run, s).await?;
                    let limit = self.fetch_timeout.or(self.timeout);
                    if by_ids {
                        let call = connector.fetch_records(&self.object, wanted);
                        self.bounded(run, limit, "reading", system, call).await
                    } else {
                        let call = connector.fetch(&self.object);
                        self.bounded(run, limit, "reading", system, call).await
                    }
                })
                .await
            };
            self.count_retries(report, s, retries);
            let snapshot = read.map_err(|source| RunError::Fetch {
                system: system.clone(),
                object: self.object.clone(),
                source,
            })?;
            if let Some(r) = report.system_mut(system) {
                r.fetched = snapshot.records.len();
            }
            snapshots.push(snapshot);
        }
        Ok(snapshots)
    }
}
