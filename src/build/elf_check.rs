//! Does a package tree carry its software? Every program of the tree (an
//! ELF file with an interpreter) and every library it loads, transitively
//! through `DT_NEEDED`, must find its interpreter and its libraries inside
//! the tree (or the store), as the dynamic loader would on a host where the
//! tree is `/usr` (`activate::usr_tree`).
//!
//! A shared object that no program loads is a plugin, opened with `dlopen`
//! when a feature is used (tc's `q_atm.so`, which needs the `libatm1` that
//! iproute2 only recommends). Its missing libraries are reported apart, as
//! [`ElfReport::unloadable`]: the feature fails when used, the programs
//! still run, so they do not make the tree unusable.
//!
//! Paths are resolved the way the host sees them: `/usr/X` is the tree's
//! `X`; `/bin`, `/sbin`, `/lib*` are the tree's (merged `/usr`); store paths
//! are themselves; anything else (`/etc`, `/opt`, …) is outside the closure
//! and never resolves. Symlinks are followed with the same mapping. A
//! library is searched in the object's `DT_RUNPATH` (else `DT_RPATH`;
//! `$ORIGIN` is the directory of the file in its package's object), then in
//! the loader's default directories.
use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use object::elf;
use object::read::elf::{ElfFile, FileHeader, ProgramHeader};
use object::{Endianness, FileKind};

use super::package_tree::tree_location;

/// The directories the x86_64 Debian loader searches after an object's own run path.
const DEFAULT_DIRS: [&str; 4] = [
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib",
    "/usr/lib",
];

/// Symlinks followed for one path before it counts as unresolvable (the kernel's limit).
const MAX_LINKS: usize = 40;

/// One thing an ELF file needs that the tree does not have.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Unresolved {
    /// The ELF file, as the host sees it (e.g. `/usr/bin/psql`).
    pub file: String,
    /// What is missing: `interpreter /lib64/ld-linux-x86-64.so.2` or `library libpq.so.5`.
    pub missing: String,
}

/// What [`check_tree`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ElfReport {
    /// ELF files checked (each real file once).
    pub checked: usize,
    /// What the tree's programs, or the libraries they load, need and the
    /// tree lacks, sorted: the tree cannot run as it is.
    pub unresolved: Vec<Unresolved>,
    /// What shared objects no program loads (plugins) need and the tree
    /// lacks, sorted: they fail only when something opens them.
    pub unloadable: Vec<Unresolved>,
}

/// One ELF file as the first pass saw it.
struct Checked {
    /// As the host sees it.
    file: String,
    /// Has an interpreter: the loader starts here.
    program: bool,
    /// The real paths of the libraries it loads.
    loads: Vec<PathBuf>,
    /// What of its needs is missing.
    missing: Vec<String>,
}

/// Checks every ELF file reachable through the package tree at `tree`
/// (the directory mounted on `/usr`).
pub fn check_tree(tree: &Path) -> io::Result<ElfReport> {
    let view = View { tree };
    let mut files: BTreeMap<PathBuf, Checked> = BTreeMap::new();
    for entry in walkdir::WalkDir::new(tree)
        .follow_links(false)
        .sort_by_file_name()
    {
        let entry = entry.map_err(io::Error::from)?;
        let relative = entry.path().strip_prefix(tree).unwrap_or(entry.path());
        let as_seen = Path::new("/usr").join(relative);
        let Some(real) = view.resolve(&as_seen) else {
            continue;
        };
        if !real.is_file() || files.contains_key(&real) {
            continue;
        }
        let data = fs::read(&real)?;
        if !data.starts_with(b"\x7fELF") {
            continue;
        }
        let needs = match FileKind::parse(&*data) {
            Ok(FileKind::Elf64) => needs::<elf::FileHeader64<Endianness>>(&data),
            Ok(FileKind::Elf32) => needs::<elf::FileHeader32<Endianness>>(&data),
            _ => None,
        };
        let file = as_seen.display().to_string();
        let checked = match needs {
            // Not even the loader could read it: as fatal as a program.
            None => Checked {
                file,
                program: true,
                loads: Vec::new(),
                missing: vec!["a readable ELF header".into()],
            },
            Some(needs) => {
                let (loads, missing) = view.resolve_needs(&needs, &real);
                Checked {
                    file,
                    program: needs.interpreter.is_some(),
                    loads,
                    missing,
                }
            }
        };
        files.insert(real, checked);
    }
    let loaded = loaded_by_programs(&files);
    let mut report = ElfReport {
        checked: files.len(),
        ..ElfReport::default()
    };
    for (real, checked) in files {
        let into = if loaded.contains(&real) {
            &mut report.unresolved
        } else {
            &mut report.unloadable
        };
        into.extend(checked.missing.into_iter().map(|missing| Unresolved {
            file: checked.file.clone(),
            missing,
        }));
    }
    report.unresolved.sort();
    report.unloadable.sort();
    Ok(report)
}

/// The programs of `files` and every library they load, transitively.
fn loaded_by_programs(files: &BTreeMap<PathBuf, Checked>) -> BTreeSet<PathBuf> {
    let mut pending: Vec<&PathBuf> = files
        .iter()
        .filter(|(_, c)| c.program)
        .map(|(real, _)| real)
        .collect();
    let mut loaded = BTreeSet::new();
    while let Some(real) = pending.pop() {
        if !loaded.insert(real.clone()) {
            continue;
        }
        if let Some(checked) = files.get(real) {
            pending.extend(checked.loads.iter());
        }
    }
    loaded
}

/// What one ELF file asks of the loader.
struct Needs {
    interpreter: Option<String>,
    libraries: Vec<String>,
    run_path: Vec<String>,
}

fn needs<Elf: FileHeader<Endian = Endianness>>(data: &[u8]) -> Option<Needs> {
    let file = ElfFile::<Elf>::parse(data).ok()?;
    let endian = file.endian();
    let interpreter = file
        .elf_program_headers()
        .iter()
        .find_map(|ph| ph.interpreter(endian, data).ok().flatten())
        .map(|bytes| String::from_utf8_lossy(bytes).into_owned());
    let table = file.elf_section_table().dynamic_table(endian, data).ok()?;
    let (mut libraries, mut runpath, mut rpath) = (Vec::new(), Vec::new(), Vec::new());
    for d in table.iter() {
        let Ok(text) = table.string(d) else { continue };
        let text = String::from_utf8_lossy(text).into_owned();
        match d.tag {
            elf::DT_NEEDED => libraries.push(text),
            elf::DT_RUNPATH => runpath.extend(text.split(':').map(str::to_string)),
            elf::DT_RPATH => rpath.extend(text.split(':').map(str::to_string)),
            _ => {}
        }
    }
    Some(Needs {
        interpreter,
        libraries,
        run_path: if runpath.is_empty() { rpath } else { runpath },
    })
}

/// The host's view of the file system with the tree on `/usr`.
struct View<'a> {
    tree: &'a Path,
}

impl View<'_> {
    /// Where the libraries of `needs` (of the file at `real`) are, and
    /// what of `needs` is missing.
    fn resolve_needs(&self, needs: &Needs, real: &Path) -> (Vec<PathBuf>, Vec<String>) {
        let (mut loads, mut missing) = (Vec::new(), Vec::new());
        if let Some(interp) = &needs.interpreter {
            if self.resolve(Path::new(interp)).is_none_or(|p| !p.is_file()) {
                missing.push(format!("interpreter {interp}"));
            }
        }
        let origin = real
            .parent()
            .unwrap_or(Path::new("/"))
            .display()
            .to_string();
        for library in &needs.libraries {
            let found = if library.contains('/') {
                self.resolve(Path::new(library)).filter(|p| p.is_file())
            } else {
                let run_path = needs.run_path.iter().map(|dir| {
                    dir.replace("${ORIGIN}", &origin)
                        .replace("$ORIGIN", &origin)
                });
                run_path
                    .chain(DEFAULT_DIRS.iter().map(|d| d.to_string()))
                    .find_map(|dir| {
                        self.resolve(&Path::new(&dir).join(library))
                            .filter(|p| p.is_file())
                    })
            };
            match found {
                Some(at) => loads.push(at),
                None => missing.push(format!("library {library}")),
            }
        }
        (loads, missing)
    }

    /// The real path behind `seen` (an absolute path as the host sees it),
    /// following symlinks; `None` when it leaves the tree and the store or
    /// does not exist.
    fn resolve(&self, seen: &Path) -> Option<PathBuf> {
        let mut pending: Vec<OsString> = components(seen);
        let mut current = PathBuf::from("/");
        let mut links = 0;
        while let Some(part) = pending.pop() {
            if part == ".." {
                current.pop();
                continue;
            }
            let next = current.join(&part);
            let real = self.real(&next)?;
            let meta = fs::symlink_metadata(&real).ok()?;
            if meta.file_type().is_symlink() {
                links += 1;
                if links > MAX_LINKS {
                    return None;
                }
                let target = fs::read_link(&real).ok()?;
                if target.is_absolute() {
                    current = PathBuf::from("/");
                }
                pending.extend(components(&target));
            } else {
                current = next;
            }
        }
        self.real(&current)
    }

    /// Where a symlink-free absolute path as the host sees it really is.
    fn real(&self, seen: &Path) -> Option<PathBuf> {
        let relative = seen.strip_prefix("/").ok()?;
        if relative == Path::new("usr") {
            Some(self.tree.to_path_buf())
        } else if let Some(at) = tree_location(relative) {
            Some(self.tree.join(at))
        } else {
            // Store paths (and the directories on the way to the store,
            // the tree's parent) are themselves; everything else is the host's.
            let store_root = self.tree.parent()?;
            let on_the_way = seen.starts_with(store_root) || store_root.starts_with(seen);
            on_the_way.then(|| seen.to_path_buf())
        }
    }
}

/// The normal components of `path`, last first (a stack to pop).
fn components(path: &Path) -> Vec<OsString> {
    let mut parts: Vec<OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(p) => Some(p.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    parts.reverse();
    parts
}
