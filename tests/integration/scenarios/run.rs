//! The check helper: runs a row on a fresh engine, step by step, matches every expectation
//! against what the engine answered and queued, and on failure names the row, the op and the
//! whole action log. Renaming an engine API touches [`Run::step`] only.

use std::fmt::Write as _;

use syncmgr::engine::RequestOptions;
use syncmgr::engine::{
    Accepted, Action, Changed, Disposition, ProgressAck, SessionEnd, SessionEnded, Stopped,
};
use syncmgr::{Cause, Engine, ItemOutcome, Progress, RequestId, RequestResult, SessionId, Time};

use super::lang::*;

/// Runs every row of a group; panics once, listing every failing row.
pub fn check_all(rows: Vec<Row>) {
    let failures: Vec<String> = rows.iter().filter_map(|r| check(r).err()).collect();
    if !failures.is_empty() {
        panic!(
            "{} of {} rows failed\n\n{}",
            failures.len(),
            rows.len(),
            failures.join("\n\n")
        );
    }
}

/// Runs one row on a fresh engine, twice, and compares the two action logs.
fn check(row: &Row) -> Result<(), String> {
    let first = Run::go(row)?;
    let second = Run::go(row)?;
    if first != second {
        return Err(format!(
            "row `{}`: the same steps gave two different logs\nfirst:\n{}\nsecond:\n{}",
            row.name,
            first.join("\n"),
            second.join("\n")
        ));
    }
    Ok(())
}

/// What a step returned, kept for the expectations that read it.
#[derive(Debug)]
enum Out {
    Unit,
    Accepted,
    Stopped(Stopped),
    Changed(Changed),
    Ack(ProgressAck),
    Ended(SessionEnded),
    Served(usize),
    Withdrawn(Withdrawn),
}

struct Logged {
    /// Index of the op that queued the action (`ops.len()` for the closing phase).
    op: usize,
    action: Action,
    expected: bool,
}

struct Req {
    tag: &'static str,
    id: RequestId,
    handler: HandlerId,
    /// `None` for a request the engine issued itself (a tick, a trigger).
    accepted: Option<Accepted>,
    items: Vec<ItemId>,
}

struct Run<'r> {
    row: &'r Row,
    engine: Engine,
    log: Vec<Logged>,
    /// Session `n` of the row is `sessions[n - 1]`.
    sessions: Vec<SessionId>,
    requests: Vec<Req>,
    /// The op being checked.
    at: usize,
    /// The last step: its index and what it returned.
    last: Option<(usize, Result<Out, Error>)>,
    /// Whether the last step's error was expected by a `fails`.
    error_expected: bool,
    before: String,
    after: String,
}

impl<'r> Run<'r> {
    /// Runs the row; returns its action log, described.
    fn go(row: &'r Row) -> Result<Vec<String>, String> {
        let engine = match row.ops.first() {
            Some(Op::Limits(config)) => {
                Engine::new(*config).map_err(|e| format!("row `{}`: {e}", row.name))?
            }
            _ => Engine::default(),
        };
        let mut run = Run {
            row,
            engine,
            log: Vec::new(),
            sessions: Vec::new(),
            requests: Vec::new(),
            at: 0,
            last: None,
            error_expected: false,
            before: String::new(),
            after: String::new(),
        };
        for (at, op) in row.ops.iter().enumerate() {
            run.at = at;
            match op {
                Op::Limits(_) if at == 0 => {}
                Op::Limits(_) => return Err(run.fail("`limits` must be the first op")),
                Op::Expect(expect) => run.expect(expect)?,
                step => {
                    run.ready_for_a_step()?;
                    run.before = format!("{:?}", run.engine);
                    let out = run.step(step).map_err(|e| run.fail(&e))?;
                    run.after = format!("{:?}", run.engine);
                    run.drain(at);
                    let ok = out.is_ok();
                    run.last = Some((at, out));
                    run.error_expected = false;
                    if ok {
                        run.record_acceptance(step)?;
                    }
                    run.consistent()?;
                }
            }
        }
        run.at = row.ops.len();
        run.ready_for_a_step()?;
        run.close()?;
        Ok(run.log.iter().map(|l| run.describe(l)).collect())
    }

    // ----- steps -----------------------------------------------------------------------------

    /// Calls the engine for one step. The outer error is a mistake in the row, the inner one
    /// the engine's (or the ID/flag constructors') answer.
    fn step(&mut self, op: &Op) -> Result<Result<Out, Error>, String> {
        let e = &mut self.engine;
        Ok(match op {
            Op::Register(spec) => e.register_handler(spec.clone()).map(|()| Out::Unit),
            Op::Start {
                handler,
                items,
                flags,
                tag,
                retain,
            } => {
                if self.requests.iter().any(|r| r.tag == *tag) {
                    return Err(format!("tag `{tag}` used twice"));
                }
                (|| {
                    let h = HandlerId::new(handler)?;
                    let flags = if *retain {
                        SyncControlFlags::from_bits_retain(*flags)
                    } else {
                        SyncControlFlags::from_raw(*flags)?
                    };
                    let acc = match items {
                        None => e.start_handler_sync(&h, flags)?,
                        Some(list) => {
                            let list = list
                                .iter()
                                .map(ItemId::new)
                                .collect::<Result<Vec<_>, _>>()?;
                            e.start_item_sync(&h, &list, flags)?
                        }
                    };
                    Ok(vec![acc])
                })()
                .map(|accs| self.stash(accs))
            }
            Op::StartAll { flags, .. } => (|| {
                let flags = SyncControlFlags::from_raw(*flags)?;
                e.start_sync_all(flags)
            })()
            .map(|accs| self.stash(accs)),
            Op::CancelRequest(tag) => {
                let id = self.req(tag)?.id;
                self.engine.cancel_request(id).map(Out::Withdrawn)
            }
            Op::Progress {
                s,
                item,
                status,
                text_units,
            } => {
                let s = self.session(*s)?;
                let text = "x".repeat(*text_units);
                (|| {
                    let item = ItemId::new(item)?;
                    self.engine
                        .report_progress(s, &item, Progress::new(*status).text(&text))
                })()
                .map(Out::Ack)
            }
            Op::Event { s, item, level } => {
                let s = self.session(*s)?;
                (|| {
                    let item = item.map(ItemId::new).transpose()?;
                    self.engine.report_event(s, item.as_ref(), *level)
                })()
                .map(|()| Out::Unit)
            }
            Op::Conflict { s, item } => {
                let s = self.session(*s)?;
                (|| {
                    let item = item.map(ItemId::new).transpose()?;
                    self.engine.report_conflict(s, item.as_ref())
                })()
                .map(|()| Out::Unit)
            }
            Op::AddToSession { s, item } => {
                let s = self.session(*s)?;
                (|| {
                    let item = ItemId::new(item)?;
                    self.engine.add_item_to_session(s, &item)
                })()
                .map(Out::Served)
            }
            Op::Propose { s, item } => {
                let s = self.session(*s)?;
                (|| {
                    let item = ItemId::new(item)?;
                    self.engine.propose_item(s, ItemSpec::new(item))
                })()
                .map(|()| Out::Unit)
            }
            Op::Commit { s, item } => {
                let s = self.session(*s)?;
                (|| {
                    let item = ItemId::new(item)?;
                    self.engine.commit_item(s, &item)
                })()
                .map(|()| Out::Unit)
            }
            Op::Finish { s, failed } => {
                let s = self.session(*s)?;
                let end = if *failed {
                    SessionEnd::Failed(Cause::new("synchronize failed"))
                } else {
                    SessionEnd::Returned
                };
                self.engine.session_finished(s, end).map(Out::Ended)
            }
            Op::StopHandler(h) => (|| e.stop_handler_sync(&HandlerId::new(h)?))().map(Out::Stopped),
            Op::StopItems(h, items) => (|| {
                let h = HandlerId::new(h)?;
                let items = items
                    .iter()
                    .map(ItemId::new)
                    .collect::<Result<Vec<_>, _>>()?;
                e.stop_item_sync(&h, &items)
            })()
            .map(Out::Stopped),
            Op::StopAll => Ok(Out::Stopped(e.stop_sync_all())),
            Op::SetActive(h, on) => {
                (|| e.set_handler_active(&HandlerId::new(h)?, *on))().map(Out::Changed)
            }
            Op::SetEnabled(h, on) => {
                (|| e.set_handler_enabled(&HandlerId::new(h)?, *on))().map(Out::Changed)
            }
            Op::SetItemEnabled(h, item, on) => {
                (|| e.set_item_enabled(&HandlerId::new(h)?, &ItemId::new(item)?, *on))()
                    .map(Out::Changed)
            }
            Op::SetConnected(h, on) => {
                (|| e.set_handler_connected(&HandlerId::new(h)?, *on))().map(Out::Changed)
            }
            Op::Update(h, items) => (|| {
                let h = HandlerId::new(h)?;
                let (caps, policies) = e
                    .handler_view(&h)
                    .map(|v| (v.capabilities, v.policies))
                    .unwrap_or_default();
                let specs = items
                    .iter()
                    .map(|i| ItemId::new(i).map(ItemSpec::new))
                    .collect::<Result<Vec<_>, _>>()?;
                e.update_handler(&h, caps, policies, specs)
            })()
            .map(Out::Changed),
            Op::UpdateCapabilities(h, caps) => (|| {
                let h = HandlerId::new(h)?;
                let (policies, items) = e
                    .handler_view(&h)
                    .map(|v| (v.policies, v.items))
                    .unwrap_or_default();
                let specs = items
                    .into_iter()
                    .map(|(id, on)| ItemSpec::new(id).with_enabled(on))
                    .collect();
                e.update_handler(&h, *caps, policies, specs)
            })()
            .map(Out::Changed),
            Op::UpsertItem(h, item, enabled) => (|| {
                let spec = ItemSpec::new(ItemId::new(item)?).with_enabled(*enabled);
                e.upsert_item(&HandlerId::new(h)?, spec)
            })()
            .map(|_reason| Out::Unit),
            Op::RemoveHandler(h) => (|| e.remove_handler(&HandlerId::new(h)?))().map(Out::Changed),
            Op::RemoveItem(h, item) => {
                (|| e.remove_item(&HandlerId::new(h)?, &ItemId::new(item)?))().map(Out::Changed)
            }
            Op::Shutdown => Ok(Out::Stopped(e.shutdown())),
            Op::Poll(secs) => {
                let _fired = e.poll(Time::from_secs(*secs));
                Ok(Out::Unit)
            }
            Op::Policy(h, policy) => {
                (|| e.set_sync_policy(&HandlerId::new(h)?, policy.clone()))().map(Out::Changed)
            }
            // The requests it makes come out as `Issued` actions, named by `issued`.
            Op::Trigger(t) => e.trigger(*t).map(|_| Out::Unit),
            Op::StartWith {
                tag,
                handler,
                items,
                flags,
                expedite,
                no_retry,
            } => {
                if self.requests.iter().any(|r| r.tag == *tag) {
                    return Err(format!("tag `{tag}` used twice"));
                }
                (|| {
                    let h = HandlerId::new(handler)?;
                    let flags = SyncControlFlags::from_raw(*flags)?;
                    let list = items
                        .iter()
                        .map(ItemId::new)
                        .collect::<Result<Vec<_>, _>>()?;
                    let options = RequestOptions {
                        expedite: *expedite,
                        no_retry: *no_retry,
                        ..RequestOptions::default()
                    };
                    Ok(vec![e.start_sync_with(&h, Some(&list), flags, &options)?])
                })()
                .map(|accs| self.stash(accs))
            }
            Op::FailPermanently { s, item } => {
                let s = self.session(*s)?;
                (|| {
                    let item = ItemId::new(item)?;
                    self.engine
                        .report_permanent_failure(s, &item, "gone".into())
                })()
                .map(Out::Ack)
            }
            Op::Limits(_) | Op::Expect(_) => unreachable!("not a step"),
        })
    }

    /// Keeps the tickets of a start call until its actions are drained (see
    /// `record_acceptance`).
    fn stash(&mut self, accs: Vec<Accepted>) -> Out {
        self.requests.extend(accs.into_iter().map(|acc| Req {
            tag: "",
            id: acc.request,
            handler: acc.handler.clone(),
            accepted: Some(acc),
            items: Vec::new(),
        }));
        Out::Accepted
    }

    /// Names the requests a successful start step made and records their items (from the
    /// engine, or from the result when the request completed at once).
    fn record_acceptance(&mut self, op: &Op) -> Result<(), String> {
        let tags: &[&'static str] = match op {
            Op::Start { tag, .. } | Op::StartWith { tag, .. } => std::slice::from_ref(tag),
            Op::StartAll { tags, .. } => tags,
            _ => return Ok(()),
        };
        let fresh: Vec<usize> = (0..self.requests.len())
            .filter(|&i| self.requests[i].tag.is_empty())
            .collect();
        if fresh.len() != tags.len() {
            return Err(self.fail(&format!(
                "the step made {} requests but the row names {}: {tags:?}",
                fresh.len(),
                tags.len()
            )));
        }
        for (i, tag) in fresh.into_iter().zip(tags) {
            if self.requests.iter().any(|r| r.tag == *tag) {
                return Err(self.fail(&format!("tag `{tag}` used twice")));
            }
            let id = self.requests[i].id;
            let items = match self.engine.request_items(id) {
                Some(items) => items,
                None => self
                    .log
                    .iter()
                    .find_map(|l| match &l.action {
                        Action::Deliver(r) if r.request == id => {
                            Some(r.items.iter().map(|o| o.item.clone()).collect())
                        }
                        _ => None,
                    })
                    .ok_or_else(|| self.fail(&format!("{id} is neither open nor delivered")))?,
            };
            let req = &mut self.requests[i];
            req.tag = tag;
            req.items = items;
        }
        Ok(())
    }

    fn drain(&mut self, op: usize) {
        let closing = op == self.row.ops.len();
        for action in self.engine.drain_actions() {
            if let Action::StartSession { session, .. } = &action {
                self.sessions.push(*session);
            }
            if let Action::Issued {
                request, handler, ..
            } = &action
            {
                // Named by an `issued` expectation; until then (and in the closing phase) by
                // its ID.
                let tag: &'static str = Box::leak(format!("{request}").into_boxed_str());
                self.requests.push(Req {
                    tag,
                    id: *request,
                    handler: handler.clone(),
                    accepted: None,
                    items: Vec::new(),
                });
            }
            self.log.push(Logged {
                op,
                action,
                expected: closing,
            });
        }
    }

    fn consistent(&self) -> Result<(), String> {
        self.engine
            .check_consistency()
            .map_err(|e| self.fail(&format!("check_consistency: {e}")))
    }

    /// Before a step (and at the end): the last step's error and every action so far must
    /// have been expected.
    fn ready_for_a_step(&self) -> Result<(), String> {
        if let Some((at, Err(e))) = &self.last
            && !self.error_expected
        {
            return Err(self.fail(&format!(
                "op #{} failed with {e:?} ({:?}) but the row expects it to succeed",
                at + 1,
                Hr(e.hresult())
            )));
        }
        let unexpected: Vec<String> = self
            .log
            .iter()
            .filter(|l| !l.expected)
            .map(|l| self.describe(l))
            .collect();
        if !unexpected.is_empty() {
            return Err(self.fail(&format!(
                "actions the row does not expect:\n    {}",
                unexpected.join("\n    ")
            )));
        }
        Ok(())
    }

    /// Ends every session still running, then checks that every accepted request got exactly
    /// one result.
    fn close(&mut self) -> Result<(), String> {
        let end = self.row.ops.len();
        for _ in 0..1000 {
            let running = self.engine.sessions();
            if running.is_empty() {
                // Requests still open wait for a timer (a backoff, a debounce window): let
                // time run to it. Nothing open: done, whatever schedules would tick later.
                match self.engine.next_deadline() {
                    Some(due) if !self.engine.open_requests().is_empty() => {
                        let _fired = self.engine.poll(due);
                        self.drain(end);
                        self.consistent()?;
                        continue;
                    }
                    _ => break,
                }
            }
            for s in running {
                let _ended = self
                    .engine
                    .session_finished(s, SessionEnd::Returned)
                    .map_err(|e| self.fail(&format!("closing {s}: {e}")))?;
                self.drain(end);
                self.consistent()?;
            }
        }
        if !self.engine.sessions().is_empty() {
            return Err(self.fail("sessions keep starting"));
        }
        let open = self.engine.open_requests();
        if !open.is_empty() {
            return Err(self.fail(&format!(
                "no session runs but requests are still open: {open:?}"
            )));
        }
        for req in &self.requests {
            let n = self.results_for(req.id).count();
            if n != 1 {
                return Err(self.fail(&format!(
                    "request `{}` got {n} results; every accepted request gets exactly one",
                    req.tag
                )));
            }
        }
        for l in &self.log {
            if let Action::Deliver(r) = &l.action
                && !self.requests.iter().any(|q| q.id == r.request)
            {
                return Err(self.fail(&format!("a result for a request never accepted: {r:?}")));
            }
        }
        Ok(())
    }

    fn results_for(&self, id: RequestId) -> impl Iterator<Item = &RequestResult> {
        self.log.iter().filter_map(move |l| match &l.action {
            Action::Deliver(r) if r.request == id => Some(r),
            _ => None,
        })
    }

    // ----- expectations ----------------------------------------------------------------------

    fn expect(&mut self, expect: &Expect) -> Result<(), String> {
        match expect {
            Expect::Started { s, handler, items } => {
                let want = Action::StartSession {
                    session: self.session(*s).map_err(|e| self.fail(&e))?,
                    handler: hid(handler),
                    items: items.iter().map(|i| iid(i)).collect(),
                    // The table drives Sync Center requests only.
                    key: MergeKey::DEFAULT,
                };
                self.take(&want)
            }
            Expect::Delivers {
                tag,
                status,
                items,
                errors,
                conflicts,
            } => {
                let req = self.req(tag).map_err(|e| self.fail(&e))?;
                let want = Action::Deliver(RequestResult {
                    request: req.id,
                    handler: req.handler.clone(),
                    status: *status,
                    errors: *errors,
                    conflicts: *conflicts,
                    // Attempts and causes are not compared: rows state attempts where
                    // they matter (`take`).
                    items: items
                        .iter()
                        .map(|(i, o)| ItemOutcome::new(iid(i), *o, 0))
                        .collect(),
                });
                self.take(&want)
            }
            Expect::SendsCancel { s, item } => {
                let want = Action::Cancel {
                    session: self.session(*s).map_err(|e| self.fail(&e))?,
                    request: if item.is_some() {
                        CancelRequest::CancelItem
                    } else {
                        CancelRequest::CancelAll
                    },
                    item: item.map(iid),
                };
                self.take(&want)
            }
            Expect::NothingElse => self.ready_for_a_step(),
            Expect::Fails(hresult, error) => match &self.last {
                Some((_, Err(e))) if e == error && Hr(e.hresult()) == *hresult => {
                    self.error_expected = true;
                    Ok(())
                }
                Some((_, Err(e))) => Err(self.fail(&format!(
                    "expected {error:?} ({hresult:?}), got {e:?} ({:?})",
                    Hr(e.hresult())
                ))),
                other => Err(self.fail(&format!("expected {error:?}, the step gave {other:?}"))),
            },
            Expect::FailsNoSession(n) => {
                let s = self.session(*n).map_err(|e| self.fail(&e))?;
                self.expect(&Expect::Fails(Hr(E_UNEXPECTED), Error::UnknownSession(s)))
            }
            Expect::Unchanged => {
                if self.before == self.after {
                    Ok(())
                } else {
                    let (before, after) = difference(&self.before, &self.after);
                    Err(self.fail(&format!(
                        "the step changed the engine (`{{:?}}` around the first difference):\n    \
                         before: {before}\n    after:  {after}"
                    )))
                }
            }
            Expect::Accepted {
                tag,
                items,
                duplicates,
            } => {
                let req = self.req(tag).map_err(|e| self.fail(&e))?;
                let Some(accepted) = &req.accepted else {
                    return Err(self.fail(&format!("`{tag}` was issued by the engine")));
                };
                let got: Vec<(String, D)> = req
                    .items
                    .iter()
                    .zip(accepted.dispositions())
                    .map(|(i, d)| (i.to_string(), self.disposition(*d)))
                    .collect();
                let want: Vec<(String, D)> =
                    items.iter().map(|(i, d)| (i.to_string(), *d)).collect();
                if got != want || req.items.len() != accepted.dispositions().len() {
                    return Err(self.fail(&format!(
                        "`{tag}` dispositions: expected {want:?}, got {got:?}"
                    )));
                }
                if accepted.duplicates != *duplicates {
                    return Err(self.fail(&format!(
                        "`{tag}` repeats: expected {duplicates}, got {}",
                        accepted.duplicates
                    )));
                }
                Ok(())
            }
            Expect::Pending { handler, items } => {
                let got = self.engine.pending_items(&hid(handler));
                let want: Vec<ItemId> = items.iter().map(|i| iid(i)).collect();
                self.same("pending", &want, &got)
            }
            Expect::Query { s, items, tags } => {
                let s = self.session(*s).map_err(|e| self.fail(&e))?;
                let got = self
                    .engine
                    .query_for_additional_items(s)
                    .map_err(|e| self.fail(&format!("query: {e}")))?;
                let got_tags: Vec<&str> = got.requests.iter().map(|r| self.tag(*r)).collect();
                let want: Vec<ItemId> = items.iter().map(|i| iid(i)).collect();
                self.same("query items", &want, &got.items)?;
                self.same("query requests", &tags.to_vec(), &got_tags)
            }
            Expect::CanContinue { s, item, yes } => {
                let s = self.session(*s).map_err(|e| self.fail(&e))?;
                let got = self
                    .engine
                    .can_continue(s, item.map(iid).as_ref())
                    .map_err(|e| self.fail(&format!("can_continue: {e}")))?;
                self.same("can_continue", yes, &got)
            }
            Expect::Acks { cancel, terminal } => match &self.last {
                Some((_, Ok(Out::Ack(ack)))) => self.same(
                    "progress ack",
                    &(*cancel, *terminal),
                    &(ack.cancel, ack.terminal),
                ),
                other => Err(self.fail(&format!("expected a progress ack, got {other:?}"))),
            },
            Expect::Stops { pending, cancels } => match &self.last {
                Some((_, Ok(Out::Stopped(st)))) => self.same(
                    "stop (canceled pending, cancel requests)",
                    &(*pending, *cancels),
                    &(st.canceled_pending, st.cancel_requests),
                ),
                other => Err(self.fail(&format!("expected a stop, got {other:?}"))),
            },
            Expect::Changes {
                changed,
                canceled_pending,
            } => match &self.last {
                Some((_, Ok(Out::Changed(ch)))) => self.same(
                    "state change (changed, canceled pending)",
                    &(*changed, *canceled_pending),
                    &(ch.changed, ch.canceled_pending),
                ),
                other => Err(self.fail(&format!("expected a state change, got {other:?}"))),
            },
            Expect::EndsWith(outcomes) => match &self.last {
                Some((_, Ok(Out::Ended(ended)))) => {
                    let want: Vec<(ItemId, O)> =
                        outcomes.iter().map(|(i, o)| (iid(i), *o)).collect();
                    self.same("session outcomes", &want, &ended.outcomes)
                }
                other => Err(self.fail(&format!("expected a session end, got {other:?}"))),
            },
            Expect::Served(n) => match &self.last {
                Some((_, Ok(Out::Served(got)))) => self.same("requests served", n, got),
                other => Err(self.fail(&format!("expected add_item_to_session, got {other:?}"))),
            },
            Expect::Withdraws(w) => match &self.last {
                Some((_, Ok(Out::Withdrawn(got)))) => self.same("request cancel", w, got),
                other => Err(self.fail(&format!("expected a request cancel, got {other:?}"))),
            },
            Expect::Idle => {
                if self.engine.is_idle() {
                    Ok(())
                } else {
                    Err(self.fail("the engine is not idle"))
                }
            }
            Expect::Debounced { handler, until } => self.take(&Action::Debounced {
                handler: hid(handler),
                until: Time::from_secs(*until),
            }),
            Expect::RetryScheduled {
                handler,
                item,
                attempt,
                max,
                at,
            } => self.take(&Action::RetryScheduled {
                handler: hid(handler),
                item: iid(item),
                attempt: *attempt,
                max_attempts: *max,
                at: Time::from_secs(*at),
            }),
            Expect::Issued {
                tag,
                handler,
                reason,
            } => self.name_issued(tag, handler, *reason),
            Expect::TickSkipped { handler, open } => {
                let open = self.req(open).map_err(|e| self.fail(&e))?.id;
                self.take(&Action::TickSkipped {
                    handler: hid(handler),
                    open,
                })
            }
            Expect::Attempts { tag, items } => {
                let id = self.req(tag).map_err(|e| self.fail(&e))?.id;
                let got: Vec<(String, u16)> = self
                    .results_for(id)
                    .next()
                    .map(|r| {
                        r.items
                            .iter()
                            .map(|o| (o.item.to_string(), o.attempts))
                            .collect()
                    })
                    .ok_or_else(|| self.fail(&format!("`{tag}` has no result yet")))?;
                let want: Vec<(String, u16)> =
                    items.iter().map(|(i, n)| (i.to_string(), *n)).collect();
                self.same("attempts", &want, &got)
            }
            Expect::NextDeadline(secs) => {
                let want = secs.map(Time::from_secs);
                self.same("next deadline", &want, &self.engine.next_deadline())
            }
        }
    }

    /// Marks the oldest unexpected `Issued` action for `handler` with `reason` as expected,
    /// and names its request `tag`.
    fn name_issued(
        &mut self,
        tag: &'static str,
        handler: &str,
        reason: TriggerReason,
    ) -> Result<(), String> {
        if self.requests.iter().any(|r| r.tag == tag) {
            return Err(self.fail(&format!("tag `{tag}` used twice")));
        }
        let found = self.log.iter_mut().find_map(|l| match &l.action {
            Action::Issued {
                request,
                handler: h,
                reason: r,
            } if !l.expected && h.as_str() == handler && *r == reason => {
                l.expected = true;
                Some(*request)
            }
            _ => None,
        });
        let Some(id) = found else {
            return Err(self.fail(&format!("no {reason:?} request was issued for `{handler}`")));
        };
        if let Some(req) = self.requests.iter_mut().find(|r| r.id == id) {
            req.tag = tag;
            req.items = self.engine.request_items(id).unwrap_or_default();
        }
        Ok(())
    }

    /// Marks the first unexpected action equal to `want` as expected.
    fn take(&mut self, want: &Action) -> Result<(), String> {
        match self
            .log
            .iter_mut()
            .find(|l| !l.expected && same_action(&l.action, want))
        {
            Some(l) => {
                l.expected = true;
                Ok(())
            }
            None => {
                let want = self.describe_action(want);
                let open: Vec<String> = self
                    .log
                    .iter()
                    .filter(|l| !l.expected)
                    .map(|l| self.describe(l))
                    .collect();
                Err(self.fail(&format!(
                    "expected action `{want}`; the unexpected actions are:\n    {}",
                    if open.is_empty() {
                        "(none)".to_string()
                    } else {
                        open.join("\n    ")
                    }
                )))
            }
        }
    }

    fn same<T: PartialEq + std::fmt::Debug + ?Sized>(
        &self,
        what: &str,
        want: &T,
        got: &T,
    ) -> Result<(), String> {
        if want == got {
            Ok(())
        } else {
            Err(self.fail(&format!("{what}: expected {want:?}, got {got:?}")))
        }
    }

    // ----- names -----------------------------------------------------------------------------

    fn session(&self, n: usize) -> Result<SessionId, String> {
        n.checked_sub(1)
            .and_then(|i| self.sessions.get(i))
            .copied()
            .ok_or_else(|| format!("session {n} never started"))
    }

    fn session_number(&self, s: SessionId) -> usize {
        self.sessions
            .iter()
            .position(|x| *x == s)
            .map_or(0, |i| i + 1)
    }

    fn req(&self, tag: &str) -> Result<&Req, String> {
        self.requests
            .iter()
            .find(|r| r.tag == tag)
            .ok_or_else(|| format!("no accepted request is tagged `{tag}`"))
    }

    fn tag(&self, id: RequestId) -> &'static str {
        self.requests
            .iter()
            .find(|r| r.id == id)
            .map_or("?", |r| r.tag)
    }

    fn disposition(&self, d: Disposition) -> D {
        match d {
            Disposition::Queued => Queued,
            Disposition::Merged => Merged,
            Disposition::Joined(s) => Joined(self.session_number(s)),
            Disposition::Settled(o) => Settled(o),
        }
    }

    fn describe(&self, l: &Logged) -> String {
        let when = if l.op == self.row.ops.len() {
            "closing".to_string()
        } else {
            format!("op #{}", l.op + 1)
        };
        format!("[{when}] {}", self.describe_action(&l.action))
    }

    fn describe_action(&self, action: &Action) -> String {
        let names = |items: &[ItemId]| {
            items
                .iter()
                .map(ItemId::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        match action {
            Action::StartSession {
                session,
                handler,
                items,
                ..
            } => format!(
                "session {} starts: {handler} [{}]",
                self.session_number(*session),
                names(items)
            ),
            Action::Cancel {
                session,
                request,
                item,
            } => format!(
                "session {} gets {request:?}{}",
                self.session_number(*session),
                item.as_ref().map_or(String::new(), |i| format!(" {i}"))
            ),
            Action::Deliver(r) => {
                let mut items = String::new();
                for ItemOutcome {
                    item: i,
                    outcome: o,
                    ..
                } in &r.items
                {
                    let _ = write!(
                        items,
                        "{}{i} {o:?}",
                        if items.is_empty() { "" } else { ", " }
                    );
                }
                format!(
                    "`{}` gets {:?} errors={} conflicts={} [{items}]",
                    self.tag(r.request),
                    r.status,
                    r.errors,
                    r.conflicts
                )
            }
            other => format!("{other:?}"),
        }
    }

    fn fail(&self, msg: &str) -> String {
        let op = match self.row.ops.get(self.at) {
            Some(op) => format!("op #{} of {} `{op:?}`", self.at + 1, self.row.ops.len()),
            None => "after the last op".to_string(),
        };
        let mut out = format!("row `{}`, {op}:\n  {msg}\n  action log:", self.row.name);
        if self.log.is_empty() {
            out.push_str(" (empty)");
        }
        for l in &self.log {
            let mark = if l.expected { " " } else { "!" };
            let _ = write!(out, "\n   {mark} {}", self.describe(l));
        }
        out
    }
}

/// The parts of two `{:?}` texts around their first difference.
fn difference(a: &str, b: &str) -> (String, String) {
    let same_start = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
    let same_end = a
        .bytes()
        .rev()
        .zip(b.bytes().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let window = |s: &str| {
        let mut from = same_start.saturating_sub(120);
        let mut to = (s.len() - same_end.min(s.len() - same_start)).min(s.len()) + 40;
        to = to.min(s.len());
        while !s.is_char_boundary(from) {
            from -= 1;
        }
        while !s.is_char_boundary(to) {
            to += 1;
        }
        format!("…{}…", &s[from..to])
    };
    (window(a), window(b))
}

/// Whether two actions are the same, a result's attempt counts and causes aside: the rows
/// that do not retry leave them out.
fn same_action(got: &Action, want: &Action) -> bool {
    match (got, want) {
        (Action::Deliver(a), Action::Deliver(b)) => {
            let bare = |r: &RequestResult| {
                let mut r = r.clone();
                for o in &mut r.items {
                    (o.attempts, o.cause) = (0, None);
                }
                r
            };
            bare(a) == bare(b)
        }
        _ => got == want,
    }
}
