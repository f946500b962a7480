//! Data-driven fixtures: `ok/*.conf` evaluate to the pinned JSON, `fail/*.conf`
//! fail with the pinned diagnostics (file, line, column, carets, hints).
use std::path::{Path, PathBuf};

use ferry_lang::inventory::{HostEntry, InventoryResolver, InventorySource};
use ferry_lang::SourceLoader;

struct FsLoader;

impl SourceLoader for FsLoader {
    fn load(&self, path: &Path) -> Result<String, String> {
        std::fs::read_to_string(path).map_err(|e| e.to_string())
    }
}

/// Lab hosts get `10.0.0.2 + index` in their subnet's first three octets;
/// other sources are not available to these fixtures.
struct LabOnly;

impl InventoryResolver for LabOnly {
    fn resolve(&self, source: &InventorySource) -> Result<Vec<HostEntry>, String> {
        let InventorySource::Lab(spec) = source else {
            return Err("only lab inventories in fixtures".into());
        };
        let prefix = spec
            .subnet
            .as_deref()
            .unwrap_or("10.0.0.0/24")
            .rsplit_once('.')
            .map(|(p, _)| p.to_string())
            .unwrap_or_default();
        Ok(spec
            .hosts
            .iter()
            .enumerate()
            .map(|(i, h)| HostEntry {
                name: h.name.clone(),
                class: h.class.clone(),
                address: format!("{prefix}.{}", i + 2),
                user: None,
                port: None,
                labels: h.labels.clone(),
                identity_file: None,
            })
            .collect())
    }
}

fn fixtures(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(Path::new("tests").join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "conf"))
        .collect();
    files.sort();
    files
}

#[test]
fn ok_fixtures_evaluate_to_pinned_json() {
    let files = fixtures("ok");
    assert!(files.len() >= 5);
    for path in files {
        let site = match ferry_lang::evaluate_site(&FsLoader, &path, &LabOnly) {
            Ok(site) => site,
            Err(d) => panic!("{} failed:\n{}", path.display(), d.render_plain()),
        };
        let json = serde_json::to_string_pretty(&site).unwrap();
        let name = format!("ok__{}", path.file_stem().unwrap().to_string_lossy());
        insta::assert_snapshot!(name, json);
    }
}

#[test]
fn fail_fixtures_report_pinned_diagnostics() {
    let files = fixtures("fail");
    assert!(files.len() >= 40, "only {} failure fixtures", files.len());
    for path in files {
        let diagnostics = match ferry_lang::evaluate_site(&FsLoader, &path, &LabOnly) {
            Ok(_) => panic!("{} evaluated without error", path.display()),
            Err(d) => d,
        };
        let mut text = String::new();
        for d in &diagnostics.items {
            let at = d.span.map(|s| diagnostics.location(s)).unwrap_or_default();
            text.push_str(&format!("{at}: {}\n", d.message));
        }
        text.push('\n');
        text.push_str(&diagnostics.render_plain());
        let name = format!("fail__{}", path.file_stem().unwrap().to_string_lossy());
        insta::assert_snapshot!(name, text);
    }
}

#[test]
fn class_closure_follows_inputs_and_files() {
    let site =
        ferry_lang::evaluate_site(&FsLoader, Path::new("tests/ok/strings.conf"), &LabOnly).unwrap();
    let (packages, files) = site.class_closure(&site.classes["app"]);
    let packages: Vec<&str> = packages.iter().map(|p| p.0.as_str()).collect();
    let files: Vec<&str> = files.iter().map(|f| f.0.as_str()).collect();
    // `tool` from the command, `wrapper` from `packages` and from the config file.
    assert_eq!(packages, ["tool", "wrapper"]);
    assert_eq!(files, ["config"]);
}
