//! The Slurm backend: one sbatch job array per submission, one array index per task, each
//! task resuming its own run folder (`safs sweep run-task`).

use std::path::Path;
use std::process::Command;

use super::SweepSpec;
use crate::{Error, Result};

/// The file the job ids of a sweep's submissions are appended to.
pub const JOBS_FILE: &str = "slurm_jobs.txt";

/// `indices` (ascending) as Slurm's array syntax: `0-3,5,7-9`.
pub fn array_ranges(indices: &[usize]) -> String {
    let mut parts = Vec::new();
    let mut i = 0;
    while i < indices.len() {
        let start = indices[i];
        let mut end = start;
        while i + 1 < indices.len() && indices[i + 1] == end + 1 {
            i += 1;
            end = indices[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    parts.join(",")
}

/// `s` as one POSIX shell word: single-quoted, each `'` written as `'\''`.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A value for an `#SBATCH` line, which sbatch reads without a shell: no space or quote.
fn sbatch_word(what: &str, v: &str) -> Result<String> {
    if v.is_empty()
        || v.chars()
            .any(|c| c.is_whitespace() || matches!(c, '\'' | '"' | '\\'))
    {
        return Err(Error::Config(format!(
            "{what} '{v}' cannot go on an #SBATCH line (no spaces, quotes or backslashes)"
        )));
    }
    Ok(v.to_string())
}

/// What one submission runs.
#[derive(Clone, Debug)]
pub struct Submission<'a> {
    /// The sweep.
    pub spec: &'a SweepSpec,
    /// The sweep file, as the tasks will read it.
    pub spec_path: &'a Path,
    /// The sweep folder (on a file system the compute nodes share).
    pub root: &'a Path,
    /// The `safs` executable the tasks run.
    pub exe: &'a Path,
    /// The task indices to submit (ascending, non-empty).
    pub indices: &'a [usize],
    /// `cpu`, `cuda` or `cuda:N`.
    pub device: &'a str,
}

/// The sbatch script of a submission: `#SBATCH` lines from the sweep file, then one
/// `safs sweep run-task` line whose every value is shell-quoted.
pub fn sbatch_script(sub: &Submission<'_>) -> Result<String> {
    if sub.indices.is_empty() {
        return Err(Error::Config("slurm: no task to submit".into()));
    }
    let (spec, r) = (sub.spec, &sub.spec.resources);
    let mut array = array_ranges(sub.indices);
    if let Some(p) = spec.slurm.max_parallel {
        array.push_str(&format!("%{p}"));
    }
    let logs = sub.root.join("logs");
    let mut lines = vec![
        "#!/bin/bash".to_string(),
        format!(
            "#SBATCH --job-name={}",
            sbatch_word("sweep name", &spec.name)?
        ),
        format!("#SBATCH --array={array}"),
        format!("#SBATCH --cpus-per-task={}", r.cpus),
        format!(
            "#SBATCH --output={}",
            sbatch_word("sweep folder", &logs.join("%a.out").display().to_string())?
        ),
    ];
    if let Some(m) = &r.mem {
        lines.push(format!(
            "#SBATCH --mem={}",
            sbatch_word("resources.mem", m)?
        ));
    }
    if let Some(t) = &r.time {
        lines.push(format!(
            "#SBATCH --time={}",
            sbatch_word("resources.time", t)?
        ));
    }
    if r.gpus > 0 {
        lines.push(format!("#SBATCH --gres=gpu:{}", r.gpus));
    }
    if let Some(p) = &spec.slurm.partition {
        lines.push(format!(
            "#SBATCH --partition={}",
            sbatch_word("slurm.partition", p)?
        ));
    }
    if let Some(a) = &spec.slurm.account {
        lines.push(format!(
            "#SBATCH --account={}",
            sbatch_word("slurm.account", a)?
        ));
    }
    lines.extend(spec.slurm.extra.iter().cloned());
    lines.push("set -euo pipefail".into());
    lines.push(format!("export RAYON_NUM_THREADS={}", r.cpus));
    lines.push(format!(
        "exec {} sweep run-task {} --out {} --index \"$SLURM_ARRAY_TASK_ID\" --device {}",
        shell_quote(&sub.exe.display().to_string()),
        shell_quote(&sub.spec_path.display().to_string()),
        shell_quote(&sub.root.display().to_string()),
        shell_quote(sub.device),
    ));
    Ok(lines.join("\n") + "\n")
}

/// Writes the script into the sweep folder, submits it with `sbatch`, appends the job id
/// to [`JOBS_FILE`] and returns it.
pub fn submit(sub: &Submission<'_>) -> Result<u64> {
    submit_with(sub, Path::new("sbatch"))
}

/// [`submit`] through the given `sbatch` program.
fn submit_with(sub: &Submission<'_>, sbatch: &Path) -> Result<u64> {
    let script = sbatch_script(sub)?;
    let logs = sub.root.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| Error::io(&logs, e))?;
    let path = sub.root.join("sweep.sbatch");
    crate::util::atomic_write(&path, script.as_bytes())?;
    let out = Command::new(sbatch)
        .arg("--parsable")
        .arg(&path)
        .output()
        .map_err(|e| {
            Error::Slurm(format!(
                "sbatch could not be started ({e}): is this a Slurm login node with sbatch on PATH?"
            ))
        })?;
    if !out.status.success() {
        return Err(Error::Slurm(format!(
            "sbatch {} failed ({}): {}",
            path.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    // --parsable prints `jobid` or `jobid;cluster`.
    let id: u64 = text
        .trim()
        .split(';')
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::Slurm(format!("sbatch printed no job id: '{}'", text.trim())))?;
    let jobs = sub.root.join(JOBS_FILE);
    let line = format!("{id} {}\n", array_ranges(sub.indices));
    use std::io::Write;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&jobs)
        .and_then(|mut f| f.write_all(line.as_bytes()))
        .map_err(|e| Error::io(&jobs, e))?;
    Ok(id)
}

/// Array index -> Slurm state (`PENDING`, `RUNNING`, ...) from `squeue -h -r -o "%i %T"`
/// lines such as `4242_3 RUNNING` (`-r` lists each array task on its own line); lines of
/// other jobs or of another shape are skipped.
pub fn parse_squeue(text: &str, job: u64) -> std::collections::BTreeMap<usize, String> {
    let prefix = format!("{job}_");
    text.lines()
        .filter_map(|line| {
            let (id, state) = line.trim().split_once(char::is_whitespace)?;
            let index = id.strip_prefix(&prefix)?.parse().ok()?;
            Some((index, state.trim().to_string()))
        })
        .collect()
}

/// The queue state of each array index of the sweep's most recent submission (from
/// [`JOBS_FILE`] and `squeue`); empty when nothing was submitted or `squeue` is not here.
pub fn queue_states(root: &Path) -> std::collections::BTreeMap<usize, String> {
    let Ok(jobs) = std::fs::read_to_string(root.join(JOBS_FILE)) else {
        return Default::default();
    };
    let Some(job) = jobs
        .lines()
        .rev()
        .find_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
    else {
        return Default::default();
    };
    match Command::new("squeue")
        .args(["-h", "-r", "-o", "%i %T", "-j"])
        .arg(job.to_string())
        .output()
    {
        Ok(out) if out.status.success() => parse_squeue(&String::from_utf8_lossy(&out.stdout), job),
        _ => Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn array_ranges_collapse_runs() {
        assert_eq!(array_ranges(&[0, 1, 2, 3, 5, 7, 8, 9]), "0-3,5,7-9");
        assert_eq!(array_ranges(&[4]), "4");
        assert_eq!(array_ranges(&[]), "");
    }

    #[test]
    fn squeue_lines_map_array_indices_to_states() {
        let text = "4242_0 RUNNING\n4242_3 PENDING\n  4242_12   COMPLETING\n99_1 RUNNING\n4242 RUNNING\n\n";
        let got = parse_squeue(text, 4242);
        let want: Vec<(usize, &str)> = vec![(0, "RUNNING"), (3, "PENDING"), (12, "COMPLETING")];
        assert_eq!(
            got.iter()
                .map(|(k, v)| (*k, v.as_str()))
                .collect::<Vec<_>>(),
            want
        );
    }

    #[test]
    fn shell_quote_survives_hostile_paths() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's $HOME `x`"), r"'it'\''s $HOME `x`'");
    }

    fn spec(extra: &str) -> SweepSpec {
        let text = format!(
            "name = \"rates\"\nexperiments = [\"e.toml\"]\n\
             [resources]\ncpus = 2\nmem = \"4G\"\ntime = \"02:00:00\"\ngpus = 1\n{extra}"
        );
        SweepSpec::from_toml(&text).unwrap()
    }

    #[test]
    fn the_script_is_the_golden_text() {
        let spec = spec(
            "[slurm]\npartition = \"gpu\"\naccount = \"lab\"\nmax_parallel = 4\n\
             extra = [\"#SBATCH --qos=long\"]\n",
        );
        let (root, spec_path, exe) = (
            PathBuf::from("/shared/sweeps/rates"),
            PathBuf::from("/home/me/it's/rates.toml"),
            PathBuf::from("/opt/safs/bin/safs"),
        );
        let script = sbatch_script(&Submission {
            spec: &spec,
            spec_path: &spec_path,
            root: &root,
            exe: &exe,
            indices: &[0, 1, 2, 5],
            device: "cuda",
        })
        .unwrap();
        let want = r#"#!/bin/bash
#SBATCH --job-name=rates
#SBATCH --array=0-2,5%4
#SBATCH --cpus-per-task=2
#SBATCH --output=/shared/sweeps/rates/logs/%a.out
#SBATCH --mem=4G
#SBATCH --time=02:00:00
#SBATCH --gres=gpu:1
#SBATCH --partition=gpu
#SBATCH --account=lab
#SBATCH --qos=long
set -euo pipefail
export RAYON_NUM_THREADS=2
exec '/opt/safs/bin/safs' sweep run-task '/home/me/it'\''s/rates.toml' --out '/shared/sweeps/rates' --index "$SLURM_ARRAY_TASK_ID" --device 'cuda'
"#;
        assert_eq!(script, want);
    }

    #[test]
    fn submission_records_the_job_id_and_names_sbatch_failures() {
        use std::os::unix::fs::PermissionsExt;
        let dir = crate::data::test_util::TempDir::new("slurm-submit");
        let spec = spec("");
        let root = dir.path().join("sweep");
        let p = PathBuf::from("s.toml");
        let sub = Submission {
            spec: &spec,
            spec_path: &p,
            root: &root,
            exe: &p,
            indices: &[1, 2],
            device: "cpu",
        };
        let fake = |name: &str, body: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
            path
        };
        let ok = fake("sbatch-ok", "echo '4242;cluster'");
        assert_eq!(submit_with(&sub, &ok).unwrap(), 4242);
        assert_eq!(submit_with(&sub, &ok).unwrap(), 4242);
        let jobs = std::fs::read_to_string(root.join(JOBS_FILE)).unwrap();
        assert_eq!(jobs, "4242 1-2\n4242 1-2\n");
        assert!(root.join("sweep.sbatch").is_file() && root.join("logs").is_dir());

        let bad = fake("sbatch-bad", "echo 'invalid partition' >&2; exit 1");
        let err = submit_with(&sub, &bad).unwrap_err().to_string();
        assert!(err.contains("invalid partition"), "{err}");
        let mute = fake("sbatch-mute", "true");
        let err = submit_with(&sub, &mute).unwrap_err().to_string();
        assert!(err.contains("no job id"), "{err}");
        let err = submit_with(&sub, &dir.path().join("missing"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("sbatch could not be started"), "{err}");
    }

    #[test]
    fn unquotable_values_and_empty_submissions_are_refused() {
        let spec = spec("");
        let root = PathBuf::from("/my sweeps/rates");
        let p = PathBuf::from("s.toml");
        let sub = Submission {
            spec: &spec,
            spec_path: &p,
            root: &root,
            exe: &p,
            indices: &[0],
            device: "cpu",
        };
        let err = sbatch_script(&sub).unwrap_err().to_string();
        assert!(
            err.contains("sweep folder") && err.contains("#SBATCH"),
            "{err}"
        );
        let root = PathBuf::from("/sweeps/rates");
        let sub = Submission {
            root: &root,
            indices: &[],
            ..sub
        };
        assert!(sbatch_script(&sub)
            .unwrap_err()
            .to_string()
            .contains("no task"));
    }
}
