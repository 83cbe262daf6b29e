//! The Azure DevOps templates under `ci/azure-pipelines/`, judged by Microsoft's
//! Azure Pipelines schema (`tests/fixtures/azure/pipelines/service-schema.json`,
//! validated with python's jsonschema) and checked for what their task inputs
//! mean: the job token mapped where `--auth pipelines` needs it, the plan's text
//! (not its path) as the pull-request comment, exit 1 told apart from 2, approval
//! only for a plan with changes, one build reused by every later stage, SARIF for
//! the Scans tab, drills as JUnit test runs, status as Prometheus text.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use yaml_rust2::{Yaml, YamlLoader};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn templates() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![root().join("ci/azure-pipelines")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "yml") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn json(y: &Yaml) -> Value {
    match y {
        Yaml::Hash(h) => Value::Object(
            h.iter()
                .map(|(k, v)| {
                    let k = match k {
                        Yaml::String(s) => s.clone(),
                        other => format!("{other:?}"),
                    };
                    (k, json(v))
                })
                .collect(),
        ),
        Yaml::Array(a) => Value::Array(a.iter().map(json).collect()),
        // Azure Pipelines reads every scalar as a string (see validate.py).
        Yaml::String(s) | Yaml::Real(s) => Value::String(s.clone()),
        Yaml::Integer(i) => Value::String(i.to_string()),
        Yaml::Boolean(b) => Value::String(b.to_string()),
        _ => Value::Null,
    }
}

fn load(p: &Path) -> Value {
    let text = std::fs::read_to_string(p).unwrap();
    let docs = YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    json(&docs[0])
}

/// Every step in a document (pipeline, stage template or step template).
fn steps(v: &Value, out: &mut Vec<Value>) {
    match v {
        Value::Object(o) => {
            if let Some(Value::Array(s)) = o.get("steps") {
                out.extend(s.iter().cloned());
            }
            for (_, x) in o {
                steps(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| steps(x, out)),
        _ => {}
    }
}

fn script(step: &Value) -> String {
    [
        step.get("script"),
        step.get("bash"),
        step.pointer("/inputs/inlineScript"),
    ]
    .into_iter()
    .flatten()
    .filter_map(Value::as_str)
    .collect::<Vec<_>>()
    .join("\n")
}

fn all() -> Vec<(PathBuf, Value)> {
    templates()
        .into_iter()
        .map(|p| {
            let v = load(&p);
            (p, v)
        })
        .collect()
}

#[test]
fn every_template_is_valid_against_microsofts_pipeline_schema() {
    let dir = std::env::temp_dir().join(format!("lifeboat-pipelines-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut docs = Vec::new();
    for (p, v) in all() {
        let out = dir.join(format!("{}.json", p.file_stem().unwrap().to_string_lossy()));
        std::fs::write(&out, serde_json::to_vec(&v).unwrap()).unwrap();
        docs.push(out);
    }
    assert!(docs.len() >= 6, "{docs:?}");
    let out = Command::new("python3")
        .arg(root().join("tests/pipelines/validate.py"))
        .arg(root().join("tests/fixtures/azure/pipelines/service-schema.json"))
        .args(&docs)
        .output()
        .expect("python3 runs (ci/test installs jsonschema)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert_eq!(text.matches(": valid").count(), docs.len(), "{text}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn task_inputs_mean_what_the_templates_intend() {
    let docs = all();
    let named = |n: &str| -> &Value {
        &docs
            .iter()
            .find(|(p, _)| p.file_name().unwrap() == n)
            .unwrap_or_else(|| panic!("{n} missing"))
            .1
    };
    for (p, v) in &docs {
        let mut ss = Vec::new();
        steps(v, &mut ss);
        for s in &ss {
            let sc = script(s);
            // The pipelines credential needs the job's token, which no task sets.
            if sc.contains("--auth pipelines") {
                assert_eq!(
                    s.pointer("/env/SYSTEM_ACCESSTOKEN").and_then(Value::as_str),
                    Some("$(System.AccessToken)"),
                    "{}: a step with --auth pipelines does not map SYSTEM_ACCESSTOKEN",
                    p.display()
                );
            }
            // Built once (templates/build.yml); later stages reuse the artifact.
            if sc.contains("cargo build") {
                assert!(
                    p.ends_with("templates/build.yml"),
                    "{} builds again",
                    p.display()
                );
            }
            // 2 means changes; anything else but 0 must fail the step.
            if sc.contains("--detailed-exitcode") {
                assert!(
                    sc.contains("2)") && sc.contains("*)") && sc.contains("exit \"$rc\""),
                    "{}: {sc}",
                    p.display()
                );
            }
            // A task input takes text: a comment given a file path posts the path.
            if s.get("task").and_then(Value::as_str) == Some("GitHubComment@0") {
                let c = s
                    .pointer("/inputs/comment")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                assert!(
                    !c.ends_with(".md") && !c.contains("ArtifactStagingDirectory"),
                    "{}: comment is a path: {c}",
                    p.display()
                );
            }
        }
    }

    // The pull request gets the plan's Markdown text as its comment.
    let mut pr = Vec::new();
    steps(named("pr-plan.yml"), &mut pr);
    let comments: Vec<&Value> = pr
        .iter()
        .filter(|s| script(s).contains("/comments") || script(s).contains("/threads"))
        .collect();
    assert_eq!(comments.len(), 2, "Azure Repos and GitHub");
    for c in comments {
        let sc = script(c);
        assert!(
            sc.contains("open(sys.argv[1]).read()") && sc.contains("plan/plan.md"),
            "{sc}"
        );
    }
    // SARIF where the Scans tab looks for it.
    assert!(pr.iter().any(|s| script(s).contains("check --sarif")));
    assert!(pr.iter().any(|s| s.get("task").and_then(Value::as_str)
        == Some("PublishPipelineArtifact@1")
        && s.pointer("/inputs/artifact").and_then(Value::as_str) == Some("CodeAnalysisLogs")));

    // Approval only for a plan with changes: the apply stage is skipped otherwise.
    let main = named("main-apply.yml");
    let stages = main["stages"].as_array().unwrap();
    let apply = stages.iter().find(|s| s["stage"] == "apply").unwrap();
    assert_eq!(
        apply["condition"],
        "and(succeeded(), eq(dependencies.plan.outputs['plan.detect.HAS_CHANGES'], 'true'))"
    );
    let mut ms = Vec::new();
    steps(main, &mut ms);
    let detect = ms
        .iter()
        .find(|s| s.get("name").and_then(Value::as_str) == Some("detect"))
        .unwrap();
    let sc = script(detect);
    assert!(
        sc.contains("0) echo \"##vso[task.setvariable variable=HAS_CHANGES;isOutput=true]false\""),
        "{sc}"
    );
    assert!(
        sc.contains("2) echo \"##vso[task.setvariable variable=HAS_CHANGES;isOutput=true]true\""),
        "{sc}"
    );
    let plan_stage = stages.iter().find(|s| s["stage"] == "plan").unwrap();
    assert_eq!(
        plan_stage["jobs"][0]["job"], "plan",
        "the condition names job `plan`"
    );

    // Drills become JUnit test runs from the file `drill --report` writes.
    let mut ds = Vec::new();
    steps(named("drill-scheduled.yml"), &mut ds);
    let tr = ds
        .iter()
        .find(|s| s.get("task").and_then(Value::as_str) == Some("PublishTestResults@2"))
        .unwrap();
    assert_eq!(
        tr.pointer("/inputs/testResultsFormat")
            .and_then(Value::as_str),
        Some("JUnit")
    );
    assert!(
        tr.pointer("/inputs/testResultsFiles")
            .and_then(Value::as_str)
            .unwrap()
            .ends_with("/drill-junit.xml")
    );
    let help = Command::new(env!("CARGO_BIN_EXE_lifeboat"))
        .args(["drill", "--help"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("drill-junit.xml"));
    assert!(named("drill-scheduled.yml").get("schedules").is_some());

    // Status as Prometheus text.
    let mut st = Vec::new();
    steps(named("status.yml"), &mut st);
    assert!(
        st.iter()
            .any(|s| script(s).contains("status --format prometheus"))
    );
}
