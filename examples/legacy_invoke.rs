//! The legacy invoke API (`ISyncMgrSynchronizeInvoke::UpdateItems`): a GUID handler, a sync
//! started at once with `STARTSYNC`, and one started from the choice of items, each with a
//! cookie that reaches the handler's `initialize`.

use syncmgr::legacy::{
    InvokeFlags, Invoked, ItemState, LegacyCallback, LegacyHandler, LegacyHandlerInfo, LegacyItem,
    LogLevel, SyncMgrFlag, SyncMgrStatus,
};
use syncmgr::{ControlFlags, HandlerError, RequestResult, SyncManager};
use uuid::Uuid;

/// The handler's CLSID: how `update_items` names it.
const BRIEFCASE: Uuid = Uuid::from_u128(0x2A15A14B_7C61_4F3B_B93E_152E8452B096);
const NOTES: Uuid = Uuid::from_u128(0x1);
const CONTACTS: Uuid = Uuid::from_u128(0x2);
const PHOTOS: Uuid = Uuid::from_u128(0x3);

/// A briefcase of three folders; `Photos` is not selected for sync by default.
struct Briefcase;

impl Briefcase {
    fn name_of(item: Uuid) -> &'static str {
        match item {
            NOTES => "Notes",
            CONTACTS => "Contacts",
            _ => "Photos",
        }
    }
}

impl LegacyHandler for Briefcase {
    fn initialize(&self, flags: SyncMgrFlag, cookie: &[u8]) -> bool {
        // The cookie is the application's own token, passed through byte for byte.
        println!(
            "  initialize({:?}, cookie {:?})",
            flags.event(),
            String::from_utf8_lossy(cookie)
        );
        true
    }

    fn handler_info(&self) -> LegacyHandlerInfo {
        LegacyHandlerInfo::new("Briefcase")
    }

    fn enum_items(&self) -> Vec<LegacyItem> {
        vec![
            LegacyItem::new(NOTES, "Notes"),
            LegacyItem::new(CONTACTS, "Contacts"),
            LegacyItem::new(PHOTOS, "Photos").with_state(ItemState::Unchecked),
        ]
    }

    fn synchronize(&self, items: &[Uuid], callback: &LegacyCallback) -> Result<(), HandlerError> {
        for &item in items {
            callback.progress(item, SyncMgrStatus::Updating, "copying", 1, 2)?;
            if item == PHOTOS {
                callback.log_error(LogLevel::Warning, "2 photos were too large", Some(item))?;
            }
            callback.progress(item, SyncMgrStatus::Succeeded, "copied", 2, 2)?;
        }
        Ok(())
    }
}

fn print_result(result: &RequestResult) {
    println!(
        "  {} {:?} ({} errors)",
        result.request, result.status, result.errors
    );
    for o in &result.items {
        let name = o.item.to_guid().map_or("?", Briefcase::name_of);
        println!("    {name}: {:?}", o.outcome);
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manager = SyncManager::new()?;
    manager.register_legacy_handler(BRIEFCASE, Briefcase, ControlFlags::WAIT)?;

    println!("update_items(STARTSYNC): the checked items, at once");
    match manager.update_items(InvokeFlags::STARTSYNC, BRIEFCASE, b"from the tray icon")? {
        Invoked::Started(ticket) => print_result(&ticket.wait()),
        Invoked::Choice(_) => unreachable!("STARTSYNC starts at once"),
    }

    println!("update_items(MINIMIZED): a choice first");
    match manager.update_items(InvokeFlags::MINIMIZED, BRIEFCASE, b"from the settings page")? {
        Invoked::Started(_) => unreachable!("without STARTSYNC there is a choice"),
        Invoked::Choice(choice) => {
            println!("  minimized: {}", choice.minimized());
            for item in choice.items() {
                println!("  [{:?}] {}", item.state, item.name);
            }
            // The application picks: the photos (unchecked) and the contacts.
            let ticket = choice.start(&[PHOTOS, CONTACTS])?;
            print_result(&ticket.wait());
        }
    }

    let report = manager.shutdown();
    println!(
        "shut down: {} abandoned sessions",
        report.abandoned_sessions
    );
    Ok(())
}
