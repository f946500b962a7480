//! A throwaway signed Debian repository made with the real tools: packages
//! built with `dpkg-deb`, indexes with `apt-ftparchive`, `InRelease`
//! clear-signed with a fresh gpg key, and an apt configuration (a root with
//! `etc/apt/sources.list.d` and the keyring) that names it. Shared by this
//! crate's tests and the lab tests, which include it by path.
#![allow(dead_code)]
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `cmd` and fails the test with its stderr unless it succeeds.
pub fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What a package ships at one path (relative to the package root).
pub enum Entry<'a> {
    /// A regular file with these bytes.
    File(&'a [u8]),
    /// A symlink to this target.
    Link(&'a str),
}

/// The repository, its signing key and scratch space; the gpg agent is stopped on drop.
pub struct SignedRepo {
    dir: tempfile::TempDir,
}

impl Drop for SignedRepo {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .args(["--kill", "gpg-agent"])
            .env("GNUPGHOME", self.gnupg())
            .status();
    }
}

impl SignedRepo {
    /// An empty repository with a new signing key, exported to [`SignedRepo::keyring`].
    pub fn new() -> SignedRepo {
        let repo = SignedRepo {
            dir: tempfile::tempdir().unwrap(),
        };
        std::fs::create_dir_all(repo.gnupg()).unwrap();
        let mut perms = std::fs::metadata(repo.gnupg()).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o700);
        std::fs::set_permissions(repo.gnupg(), perms).unwrap();
        run(repo.gpg().args([
            "--passphrase",
            "",
            "--quick-gen-key",
            "ferry test <test@ferry.invalid>",
            "ed25519",
            "sign",
            "never",
        ]));
        let keyring = repo.keyring();
        run(repo.gpg().arg("--output").arg(&keyring).arg("--export"));
        repo
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn gnupg(&self) -> PathBuf {
        self.root().join("gnupg")
    }

    /// The public key, as a binary keyring.
    pub fn keyring(&self) -> PathBuf {
        self.root().join("keyring.gpg")
    }

    /// The repository's top directory (what a source's URI points at).
    pub fn repo(&self) -> PathBuf {
        self.root().join("repo")
    }

    pub fn gpg(&self) -> Command {
        let mut c = Command::new("gpg");
        c.env("GNUPGHOME", self.gnupg())
            .args(["--batch", "--quiet"]);
        c
    }

    /// A package that ships `usr/share/NAME/version` holding its version.
    pub fn add_package(
        &self,
        name: &str,
        version: &str,
        arch: &str,
        depends: &str,
        provides: &str,
    ) {
        let file = format!("usr/share/{name}/version");
        let entries = [(file.as_str(), Entry::File(version.as_bytes()))];
        self.add_package_with(name, version, arch, depends, provides, &entries);
    }

    /// A package that ships `entries`, built into the pool (not yet published).
    pub fn add_package_with(
        &self,
        name: &str,
        version: &str,
        arch: &str,
        depends: &str,
        provides: &str,
        entries: &[(&str, Entry)],
    ) {
        let build = self.root().join(format!("build/{name}_{version}"));
        let _ = std::fs::remove_dir_all(&build);
        std::fs::create_dir_all(build.join("DEBIAN")).unwrap();
        for (path, entry) in entries {
            let at = build.join(path);
            std::fs::create_dir_all(at.parent().unwrap()).unwrap();
            match entry {
                Entry::File(bytes) => std::fs::write(&at, bytes).unwrap(),
                Entry::Link(target) => std::os::unix::fs::symlink(target, &at).unwrap(),
            }
        }
        let mut control = format!(
            "Package: {name}\nVersion: {version}\nArchitecture: {arch}\nMaintainer: ferry <test@ferry.invalid>\nDescription: test package\n"
        );
        if !depends.is_empty() {
            control.push_str(&format!("Depends: {depends}\n"));
        }
        if !provides.is_empty() {
            control.push_str(&format!("Provides: {provides}\n"));
        }
        std::fs::write(build.join("DEBIAN/control"), control).unwrap();
        let pool = self.repo().join("pool/main");
        std::fs::create_dir_all(&pool).unwrap();
        let deb = pool.join(format!("{name}_{version}_{arch}.deb"));
        run(Command::new("dpkg-deb")
            .args(["--build", "--root-owner-group", "-Zgzip"])
            .arg(&build)
            .arg(&deb));
    }

    /// A `.deb` made elsewhere (a real Debian package), copied into the pool
    /// under the archive's name for it: `apt-get download` keeps the epoch,
    /// quoted (`_1%3a1.35…`), which a pool name never has.
    pub fn add_deb(&self, deb: &Path) {
        let pool = self.repo().join("pool/main");
        std::fs::create_dir_all(&pool).unwrap();
        let name = deb.file_name().unwrap().to_str().unwrap();
        let name = match (name.find('_'), name.find("%3a")) {
            (Some(underscore), Some(epoch)) if underscore < epoch => {
                format!("{}{}", &name[..=underscore], &name[epoch + 3..])
            }
            _ => name.to_string(),
        };
        std::fs::copy(deb, pool.join(name)).unwrap();
    }

    /// Writes Packages, Packages.gz, Release and the signed InRelease of suite `stable`.
    pub fn publish(&self) {
        let repo = self.repo();
        let index = repo.join("dists/stable/main/binary-amd64");
        std::fs::create_dir_all(&index).unwrap();
        let out = Command::new("apt-ftparchive")
            .args(["packages", "pool"])
            .current_dir(&repo)
            .output()
            .unwrap();
        assert!(out.status.success());
        std::fs::write(index.join("Packages"), &out.stdout).unwrap();
        run(Command::new("gzip")
            .args(["-kf9n"])
            .arg(index.join("Packages")));
        let out = Command::new("apt-ftparchive")
            .args([
                "-o",
                "APT::FTPArchive::Release::Suite=stable",
                "-o",
                "APT::FTPArchive::Release::Codename=stable",
                "-o",
                "APT::FTPArchive::Release::Architectures=amd64",
                "-o",
                "APT::FTPArchive::Release::Components=main",
                "release",
                "dists/stable",
            ])
            .current_dir(&repo)
            .output()
            .unwrap();
        assert!(out.status.success());
        let release = repo.join("dists/stable/Release");
        std::fs::write(&release, &out.stdout).unwrap();
        let inrelease = repo.join("dists/stable/InRelease");
        run(self
            .gpg()
            .arg("--yes")
            .arg("--output")
            .arg(&inrelease)
            .arg("--clearsign")
            .arg(&release));
    }

    pub fn inrelease(&self) -> Vec<u8> {
        std::fs::read(self.repo().join("dists/stable/InRelease")).unwrap()
    }

    /// A root whose apt configuration has this repository, at `uri`, as its
    /// one source, signed by this key (what `--apt-root` takes).
    pub fn apt_root(&self, uri: &str) -> PathBuf {
        let sysroot = self.root().join("sysroot");
        let etc = sysroot.join("etc/apt/sources.list.d");
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::create_dir_all(sysroot.join("usr/share/keyrings")).unwrap();
        std::fs::copy(
            self.keyring(),
            sysroot.join("usr/share/keyrings/ferry-test.gpg"),
        )
        .unwrap();
        let text = format!(
            "Types: deb\nURIs: {uri}\nSuites: stable\nComponents: main\nSigned-By: /usr/share/keyrings/ferry-test.gpg\n"
        );
        std::fs::write(etc.join("test.sources"), text).unwrap();
        sysroot
    }

    /// `apt-get update` against this repository at `uri`, with apt's lists
    /// written where [`SignedRepo::apt_root`]'s root keeps them: what an
    /// operator runs before `ferry lock --update`. apt gets a configuration
    /// of its own, because it reads `Signed-By` outside its `Dir`.
    pub fn apt_update(&self, uri: &str) {
        let apt = self.root().join("apt-get");
        let sources = apt.join("etc/apt/sources.list.d");
        std::fs::create_dir_all(&sources).unwrap();
        for dir in [
            "var/lib/apt/lists/partial",
            "var/cache/apt/archives/partial",
            "var/lib/dpkg",
        ] {
            std::fs::create_dir_all(apt.join(dir)).unwrap();
        }
        std::fs::write(apt.join("var/lib/dpkg/status"), "").unwrap();
        let text = format!(
            "Types: deb\nURIs: {uri}\nSuites: stable\nComponents: main\nSigned-By: {}\n",
            self.keyring().display()
        );
        std::fs::write(sources.join("test.sources"), text).unwrap();
        let lists = self.root().join("sysroot/var/lib/apt/lists");
        std::fs::create_dir_all(lists.join("partial")).unwrap();
        let out = Command::new("apt-get")
            .arg("-o")
            .arg(format!("Dir={}", apt.display()))
            .arg("-o")
            .arg(format!("Dir::State::Lists={}", lists.display()))
            .args(["-o", "APT::Sandbox::User=root", "update"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        // apt-get update exits 0 on some fetch failures, and says so with `W:`/`E:`.
        assert!(
            out.status.success() && !stderr.contains("E:") && !stderr.contains("W:"),
            "apt-get update: {}\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}
