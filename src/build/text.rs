//! Rendering the language's strings-with-context into plain strings, once the
//! store paths they mention are known.
use std::collections::BTreeMap;
use std::path::Path;

use ferry_lang::model::{PackageId, Text, TextFileId, TextPart};
use ferry_store::StorePath;

/// Built outputs that text may refer to.
#[derive(Debug, Default, Clone)]
pub struct Outputs {
    /// Each built package's output.
    pub packages: BTreeMap<PackageId, StorePath>,
    /// Each written file's output.
    pub files: BTreeMap<TextFileId, StorePath>,
}

/// A rendered string and the store paths it mentions (its references).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The text, with store paths in place.
    pub text: String,
    /// The store paths it mentions.
    pub references: Vec<StorePath>,
}

/// The on-host path of a secret's file (outside the store, DESIGN §8).
pub fn secret_path(host_state_dir: &Path, name: &str) -> String {
    host_state_dir
        .join("secrets")
        .join(name)
        .display()
        .to_string()
}

impl Outputs {
    /// Renders `text`; every package or file it mentions must be built already
    /// (the build graph guarantees it).
    pub fn render(&self, text: &Text, host_state_dir: &Path) -> Rendered {
        let mut rendered = Rendered::default();
        for part in &text.parts {
            match part {
                TextPart::Lit(lit) => rendered.text.push_str(lit),
                TextPart::Package(id) => self.push_ref(&mut rendered, self.packages.get(id), &id.0),
                TextPart::File(id) => self.push_ref(&mut rendered, self.files.get(id), &id.0),
                TextPart::Secret(name) => {
                    rendered.text.push_str(&secret_path(host_state_dir, name))
                }
            }
        }
        rendered.references.sort();
        rendered.references.dedup();
        rendered
    }

    fn push_ref(&self, rendered: &mut Rendered, path: Option<&StorePath>, what: &str) {
        // The build graph makes every mentioned package and file a dependency,
        // so its output exists before anything mentioning it is rendered.
        let Some(path) = path else {
            unreachable!("`{what}` rendered before it was built")
        };
        rendered.text.push_str(&path.to_string());
        rendered.references.push(path.clone());
    }
}
