//! The Debian package, as an operator gets it: built with cargo-deb from
//! `[package.metadata.deb]`, unpacked into a scratch root, every file where
//! docs/install.md says, the packaged binary accepting the packaged
//! routes.yaml, and the unit checked by systemd's own verifier.
//!
//! The package is built with `--no-build` around the debug binary the test
//! suite already has (copied where cargo-deb looks for the release one): a
//! release build here takes minutes, and what is tested is the package's
//! definition, not the optimizer. `cargo deb -p strangler` itself builds the
//! release binary.

use std::path::{Path, PathBuf};
use std::process::Command;

use strangler_e2e::proxy::binary;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn run(cmd: &mut Command) -> (i32, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// The completions and manual pages the package ships are what the CLI
/// generates now (scripts/regenerate-packaging rewrites them).
#[test]
fn the_shipped_completions_and_manual_pages_are_the_cli_s() {
    let generated = workspace().join("packaging/generated");
    for (shell, file) in [
        ("bash", "strangler.bash"),
        ("zsh", "_strangler"),
        ("fish", "strangler.fish"),
    ] {
        let out = Command::new(binary())
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success());
        let shipped = std::fs::read(generated.join("completions").join(file)).unwrap();
        assert!(
            out.stdout == shipped,
            "packaging/generated/completions/{file} is stale: run scripts/regenerate-packaging"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let (code, text) = run(Command::new(binary())
        .args(["man", "--dir"])
        .arg(dir.path()));
    assert_eq!(code, 0, "{text}");
    let names = |d: &Path| {
        let mut n: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        n.sort();
        n
    };
    let shipped_dir = generated.join("man");
    assert_eq!(
        names(dir.path()),
        names(&shipped_dir),
        "run scripts/regenerate-packaging"
    );
    for name in names(dir.path()) {
        assert!(
            std::fs::read(dir.path().join(&name)).unwrap()
                == std::fs::read(shipped_dir.join(&name)).unwrap(),
            "packaging/generated/man/{name} is stale: run scripts/regenerate-packaging"
        );
    }
}

#[test]
fn the_package_installs_a_unit_systemd_accepts_and_a_config_check_accepts() {
    let scratch = tempfile::tempdir().unwrap();
    let target = scratch.path().join("target");
    std::fs::create_dir_all(target.join("release")).unwrap();
    std::fs::copy(binary(), target.join("release/strangler")).unwrap();
    let out_dir = scratch.path().join("out");
    let (code, text) = run(Command::new("cargo")
        .args(["deb", "-p", "strangler", "--no-build", "--fast", "-o"])
        .arg(&out_dir)
        .env("CARGO_TARGET_DIR", &target)
        .current_dir(workspace()));
    assert_eq!(
        code, 0,
        "cargo deb failed (is cargo-deb installed? scripts/setup installs it):\n{text}"
    );
    let deb = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .expect("a .deb");
    assert!(
        deb.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(&format!("strangler_{}-1_", env!("CARGO_PKG_VERSION"))),
        "{}",
        deb.display()
    );

    // Installed into a scratch root: the files and the package's control.
    let root = scratch.path().join("root");
    let control = scratch.path().join("control");
    assert_eq!(
        run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root)).0,
        0
    );
    assert_eq!(
        run(Command::new("dpkg-deb").arg("-e").arg(&deb).arg(&control)).0,
        0
    );
    let mode = |p: &str| {
        use std::os::unix::fs::PermissionsExt;
        let path = root.join(p);
        let meta = std::fs::metadata(&path).unwrap_or_else(|_| panic!("{p} is not installed"));
        meta.permissions().mode() & 0o777
    };
    assert_eq!(mode("usr/bin/strangler"), 0o755);
    assert_eq!(mode("usr/lib/systemd/system/strangler.service"), 0o644);
    assert_eq!(mode("etc/strangler/routes.yaml"), 0o644);
    assert_eq!(
        mode("etc/default/strangler"),
        0o640,
        "it holds the admin token"
    );
    for p in [
        "etc/profile.d/strangler.sh",
        "usr/share/bash-completion/completions/strangler",
        "usr/share/zsh/vendor-completions/_strangler",
        "usr/share/fish/vendor_completions.d/strangler.fish",
        "usr/share/strangler/routes.schema.json",
        "usr/share/doc/strangler/install.md",
        "usr/share/doc/strangler/runbooks/upgrade.md",
        "usr/share/doc/strangler/examples/routes.yaml",
        "usr/share/man/man1/strangler.1.gz",
        "usr/share/man/man1/strangler-rollback.1.gz",
        "usr/share/man/man1/strangler-rollout-start.1.gz",
    ] {
        mode(p);
    }
    let man_pages = std::fs::read_dir(root.join("usr/share/man/man1"))
        .unwrap()
        .count();
    let generated = std::fs::read_dir(workspace().join("packaging/generated/man"))
        .unwrap()
        .count();
    assert_eq!(man_pages, generated, "a page per command");

    let conffiles = std::fs::read_to_string(control.join("conffiles")).unwrap();
    for f in ["/etc/strangler/routes.yaml", "/etc/default/strangler"] {
        assert!(
            conffiles.lines().any(|l| l == f),
            "{f} not a conffile:\n{conffiles}"
        );
    }
    let postinst = std::fs::read_to_string(control.join("postinst")).unwrap();
    assert!(postinst.contains("adduser --system --group"), "{postinst}");
    assert!(
        postinst.contains("systemctl reload strangler.service"),
        "{postinst}"
    );
    let (code, text) = run(Command::new("sh").arg("-n").arg(control.join("postinst")));
    assert_eq!(code, 0, "postinst is not valid sh: {text}");
    let control_text = std::fs::read_to_string(control.join("control")).unwrap();
    assert!(control_text.contains("Depends: adduser"), "{control_text}");

    // The packaged binary accepts the packaged configuration.
    let bin = root.join("usr/bin/strangler");
    let (code, text) = run(Command::new(&bin)
        .arg("check")
        .arg(root.join("etc/strangler/routes.yaml")));
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("ok"), "{text}");
    let (_, version) = run(Command::new(&bin).arg("--version"));
    assert_eq!(
        version.trim(),
        format!("strangler {}", env!("CARGO_PKG_VERSION"))
    );

    // The unit, verified by systemd against the scratch root (with the
    // host's own units beside it, for the targets it names) and with the
    // packaged manual pages its Documentation= names. verify exits 0 on an
    // unknown key too, only saying so: any output is a failure.
    let units = root.join("usr/lib/systemd/system");
    let (code, text) = run(Command::new("cp")
        .arg("-an")
        .arg("/usr/lib/systemd/system/.")
        .arg(&units));
    assert_eq!(code, 0, "{text}");
    let (code, text) = run(Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", root.display()))
        .arg("/usr/lib/systemd/system/strangler.service")
        .env("MANPATH", root.join("usr/share/man")));
    assert!(
        code == 0 && text.trim().is_empty(),
        "systemd-analyze verify:\n{text}"
    );

    // Its hardening, as systemd scores it (0 best, 100 worst; "OK" up to 39).
    let (code, text) = run(Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--threshold=30"])
        .arg(format!("--root={}", root.display()))
        .arg("strangler.service"));
    assert_eq!(code, 0, "exposure above 3.0:\n{text}");
    assert!(
        text.contains("Overall exposure level for strangler.service"),
        "{text}"
    );
    let unit = std::fs::read_to_string(units.join("strangler.service")).unwrap();
    for line in [
        "Type=notify",
        "NotifyAccess=all",
        "User=strangler",
        "ExecReload=/usr/bin/strangler upgrade --pid-file /run/strangler/strangler.pid",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line} missing:\n{unit}");
    }
    // The pid file the reload reads is the one serve writes.
    assert!(unit.contains("--pid-file /run/strangler/strangler.pid --upgrade-sock"));
}
