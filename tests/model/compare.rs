//! What the engine and the naive model must agree on after every call: the reply (or the
//! error and its HRESULT), the sessions started (in order, with items and merge key), the
//! results delivered (with each item's attempts) and cancels sent, the time decisions (in
//! order: debounced until, retry scheduled, requests issued, ticks skipped), the handler,
//! session and open-request views, and the time and next deadline. The
//! property tests (`tests/properties.rs`) and the engine fuzz target
//! (`fuzz/fuzz_targets/engine.rs`) include this file with `#[path]`, next to the model and the
//! driver.

use syncmgr::Error;
use syncmgr::engine::Action;

use crate::driver::{Call, Reply, Snapshot, from_action, on_model};
use crate::model::{MAction, MError, Model};

/// Makes `call` on the model and compares its answer with the engine's: `got` and `actions`
/// are what the same call gave on the engine, `post` the engine's state after it. The error
/// says what differs.
pub fn compare_with_model(
    model: &mut Model,
    call: &Call,
    got: &Result<Reply, Error>,
    actions: &[Action],
    post: &Snapshot,
) -> Result<(), String> {
    let want = on_model(model, call);
    match (got, &want) {
        (Ok(a), Ok(b)) if a == b => {}
        (Err(e), Err(m)) if MError::from_engine(e) == *m => {
            if e.hresult() != m.hresult() {
                return Err(format!(
                    "HRESULTs differ for {e:?}: engine {:#x}, model {:#x}",
                    e.hresult(),
                    m.hresult()
                ));
            }
        }
        _ => return Err(format!("replies differ: engine {got:?}, model {want:?}")),
    }
    let engine: Vec<MAction> = actions.iter().map(from_action).collect();
    let (es, ed, ec, et) = split(&engine);
    let (ms, md, mc, mt) = split(&model.take_actions());
    if es != ms {
        return Err(format!(
            "sessions started differ: engine {es:?}, model {ms:?}"
        ));
    }
    if ed != md {
        return Err(format!("results differ: engine {ed:?}, model {md:?}"));
    }
    if ec != mc {
        return Err(format!("cancels differ: engine {ec:?}, model {mc:?}"));
    }
    if et != mt {
        return Err(format!(
            "time decisions differ: engine {et:?}, model {mt:?}"
        ));
    }
    if (post.now, post.deadline) != (model.now(), model.next_deadline()) {
        return Err(format!(
            "time differs: engine now {} next deadline {:?}, model now {} next deadline {:?}",
            post.now,
            post.deadline,
            model.now(),
            model.next_deadline()
        ));
    }
    let (eh, mh) = (post.h_views(), model.handler_views());
    if eh != mh {
        return Err(format!("handlers differ: engine {eh:?}, model {mh:?}"));
    }
    let (es, ms) = (post.s_views(), model.session_views());
    if es != ms {
        return Err(format!("sessions differ: engine {es:?}, model {ms:?}"));
    }
    let (er, mr) = (post.r_views(), model.request_views());
    if er != mr {
        return Err(format!("open requests differ: engine {er:?}, model {mr:?}"));
    }
    Ok(())
}

/// Start actions in order; results and cancels as sets (their relative order within one call
/// is not part of the contract the model states); time decisions in order.
type Split = (
    Vec<MAction>,
    Vec<(u64, MAction)>,
    Vec<(u64, u32, Option<String>, MAction)>,
    Vec<MAction>,
);

fn split(list: &[MAction]) -> Split {
    let mut starts = Vec::new();
    let mut delivers = Vec::new();
    let mut cancels = Vec::new();
    let mut time = Vec::new();
    for a in list {
        match a {
            MAction::Start { .. } => starts.push(a.clone()),
            MAction::Debounced { .. }
            | MAction::RetryScheduled { .. }
            | MAction::Issued { .. }
            | MAction::TickSkipped { .. } => time.push(a.clone()),
            MAction::Deliver(r) => delivers.push((r.request, a.clone())),
            MAction::Cancel {
                session,
                request,
                item,
            } => cancels.push((
                *session,
                request.to_raw(),
                item.as_ref().map(|i| i.to_string()),
                a.clone(),
            )),
        }
    }
    delivers.sort_by_key(|(r, _)| *r);
    cancels.sort_by(|a, b| (a.0, a.1, &a.2).cmp(&(b.0, b.1, &b.2)));
    (starts, delivers, cancels, time)
}
