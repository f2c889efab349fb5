//! The SDK enums of the current API: progress statuses, cancel requests, event levels, update
//! reasons, handler types.

use super::sdk_enum;

sdk_enum! {
    /// The state an item reports during a session (`SYNCMGR_PROGRESS_STATUS`). There is no 0.
    pub enum ProgressStatus {
        /// `SYNCMGR_PS_UPDATING` (1): syncing, with a known amount of work.
        Updating = 1,
        /// `SYNCMGR_PS_UPDATING_INDETERMINATE` (2): syncing, amount of work unknown.
        UpdatingIndeterminate = 2,
        /// `SYNCMGR_PS_SUCCEEDED` (3): finished successfully.
        Succeeded = 3,
        /// `SYNCMGR_PS_FAILED` (4): finished with an error.
        Failed = 4,
        /// `SYNCMGR_PS_CANCELED` (5): stopped before it finished.
        Canceled = 5,
        /// `SYNCMGR_PS_DISCONNECTED` (6): not synced because the handler is disconnected.
        Disconnected = 6,
    }
}

impl ProgressStatus {
    /// Whether this status ends the item's part in the session: `Succeeded`, `Failed`,
    /// `Canceled` or `Disconnected`.
    ///
    /// ```
    /// use syncmgr::ProgressStatus;
    /// assert!(ProgressStatus::Failed.is_terminal());
    /// assert!(!ProgressStatus::Updating.is_terminal());
    /// ```
    pub const fn is_terminal(self) -> bool {
        matches!(
            self,
            ProgressStatus::Succeeded
                | ProgressStatus::Failed
                | ProgressStatus::Canceled
                | ProgressStatus::Disconnected
        )
    }
}

sdk_enum! {
    /// What the manager asks of a running session when it answers a progress report
    /// (`SYNCMGR_CANCEL_REQUEST`).
    pub enum CancelRequest {
        /// `SYNCMGR_CR_NONE` (0): carry on.
        None = 0,
        /// `SYNCMGR_CR_CANCEL_ITEM` (1): stop syncing the reported item.
        CancelItem = 1,
        /// `SYNCMGR_CR_CANCEL_ALL` (2): stop the whole session.
        CancelAll = 2,
    }
}

sdk_enum! {
    /// The severity of an event a handler reports (`SYNCMGR_EVENT_LEVEL`).
    pub enum EventLevel {
        /// `SYNCMGR_EL_INFORMATION` (1): for information.
        Information = 1,
        /// `SYNCMGR_EL_WARNING` (2): something went wrong but the sync went on.
        Warning = 2,
        /// `SYNCMGR_EL_ERROR` (3): something failed.
        Error = 3,
    }
}

sdk_enum! {
    /// What kind of thing a handler syncs (`SYNCMGR_HANDLER_TYPE`): each variant is the SDK's
    /// `SYNCMGR_HT_` value of the same name and number. The default is
    /// [`Unspecified`](Self::Unspecified), as in the SDK.
    #[derive(Default)]
    pub enum HandlerType {
        /// 0, the SDK's default: the handler does not say what it syncs.
        #[default]
        Unspecified = 0,
        /// `SYNCMGR_HT_APPLICATION` (1): an application.
        Application = 1,
        /// `SYNCMGR_HT_DEVICE` (2): a device.
        Device = 2,
        /// `SYNCMGR_HT_FOLDER` (3): a folder.
        Folder = 3,
        /// `SYNCMGR_HT_SERVICE` (4): a service.
        Service = 4,
        /// `SYNCMGR_HT_COMPUTER` (5): a computer.
        Computer = 5,
    }
}

sdk_enum! {
    /// Why a handler's or item's registration changed (`SYNCMGR_UPDATE_REASON`).
    pub enum UpdateReason {
        /// `SYNCMGR_UR_ADDED` (0): it was added.
        Added = 0,
        /// `SYNCMGR_UR_CHANGED` (1): it changed.
        Changed = 1,
        /// `SYNCMGR_UR_REMOVED` (2): it was removed.
        Removed = 2,
    }
}
