//! The handler objects by ID, shared by the scheduler (which alone changes them) and the
//! callers (which run hooks and `is_connected` on their own threads).

use std::sync::{Arc, PoisonError, RwLock};

use super::SyncHandler;
use super::tasks::Runner;

/// A handler object as it is registered: its hooks, and for an async handler where its
/// sessions run.
#[derive(Clone)]
pub(crate) struct Object {
    pub handler: Arc<dyn SyncHandler>,
    pub runner: Option<Arc<dyn Runner>>,
}

impl Object {
    /// A blocking handler: its sessions run `synchronize` on a worker.
    pub fn blocking(handler: Arc<dyn SyncHandler>) -> Object {
        Object {
            handler,
            runner: None,
        }
    }
}
use crate::id::{HandlerId, IdMap};

/// A value a layer built on the manager keeps with a handler, opaque to the manager: the
/// legacy API keeps its `LegacyHandler` here and downcasts it back, so the manager never
/// names a type of the layer above it.
pub(crate) type Extra = Arc<dyn std::any::Any + Send + Sync>;

/// Handler objects by ID, shared by the scheduler (which alone changes it) and the callers
/// (which run hooks and `is_connected` on their own threads), each with its [`Extra`], if any.
#[derive(Clone, Default)]
pub(crate) struct Registry(Arc<RwLock<IdMap<HandlerId, Entry>>>);

#[derive(Clone)]
pub(crate) struct Entry {
    pub(super) object: Arc<dyn SyncHandler>,
    /// Where an async handler's sessions run (`None`: on a worker, through `synchronize`).
    pub(super) runner: Option<Arc<dyn Runner>>,
    pub(super) extra: Option<Extra>,
}

impl Registry {
    // No user code runs under this lock, so poisoning cannot come from a handler; recover
    // from it anyway rather than panic.
    pub(super) fn read(&self) -> std::sync::RwLockReadGuard<'_, IdMap<HandlerId, Entry>> {
        self.0.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn get(&self, id: &HandlerId) -> Option<Arc<dyn SyncHandler>> {
        self.read().get(id).map(|e| e.object.clone())
    }

    /// The handler object and, for an async handler, where its sessions run.
    pub fn object(&self, id: &HandlerId) -> Option<Object> {
        self.read().get(id).map(|e| Object {
            handler: e.object.clone(),
            runner: e.runner.clone(),
        })
    }

    /// The extra value kept with a handler, if any.
    pub fn extra(&self, id: &HandlerId) -> Option<Extra> {
        self.read().get(id).and_then(|e| e.extra.clone())
    }

    /// Adds a handler. Hands back the entry it displaced (none, as long as the engine keeps
    /// IDs unique), so that the caller lets go of it outside this lock.
    #[must_use = "a displaced entry holds user values: release it, never drop it under a lock"]
    pub fn insert(&self, id: HandlerId, object: Object, extra: Option<Extra>) -> Option<Entry> {
        let entry = Entry {
            object: object.handler,
            runner: object.runner,
            extra,
        };
        self.0
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, entry)
    }

    /// Takes every handler out, for shutdown: the caller drops them outside the lock.
    pub(super) fn take_all(&self) -> IdMap<HandlerId, Entry> {
        std::mem::take(&mut *self.0.write().unwrap_or_else(PoisonError::into_inner))
    }

    /// Takes a handler out and hands it back, so the caller drops it outside the lock.
    pub fn remove(&self, id: &HandlerId) -> Option<Entry> {
        self.0
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id)
    }

    /// Every handler, with its extra value if it has one, in ID order (so callers that walk
    /// them do so in the same order every time).
    pub(super) fn all(&self) -> Vec<(HandlerId, Entry)> {
        let mut all: Vec<(HandlerId, Entry)> = self
            .read()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}
