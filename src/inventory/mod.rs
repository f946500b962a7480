//! Inventory providers: turn a site's `inventory` declaration into hosts.
//!
//! One file per provider (DESIGN §7); [`Providers`] dispatches on the source
//! kind and is what the CLI hands to the evaluator.
use ferry_lang::inventory::{HostEntry, InventoryResolver, InventorySource};

pub mod file;
pub mod lab;

/// The inventory providers ferry ships, behind the language's resolver trait.
#[derive(Debug, Default, Clone, Copy)]
pub struct Providers;

impl InventoryResolver for Providers {
    fn resolve(&self, source: &InventorySource) -> Result<Vec<HostEntry>, String> {
        match source {
            InventorySource::Lab(spec) => lab::resolve(spec).map_err(|e| e.to_string()),
            InventorySource::File { path } => file::resolve(path).map_err(|e| e.to_string()),
            other => Err(format!(
                "inventory provider `{}` is not available in this build",
                match other {
                    InventorySource::File { .. } => "file",
                    InventorySource::Exec { .. } => "exec",
                    InventorySource::Ansible { .. } => "ansible",
                    InventorySource::Lab(_) => "lab",
                }
            )),
        }
    }
}
