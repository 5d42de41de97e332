//! `jobctl validate` through the binary: every kind of bad input gets a clear error that names
//! the file, line and column, says what was wrong and what was expected.

mod common;

use common::{Project, job};

/// Validates one file and checks that stderr names it at `line:column` with `message`.
fn rejects(file: &str, content: &[u8], location: &str, message: &str) {
    let run = Project::new()
        .file(&format!("jobs.d/{file}"), content)
        .run(&["validate"]);
    assert_eq!(run.code, 1, "{file}: expected exit 1\n{}", run.stderr);
    let at = if location.is_empty() {
        format!("jobs.d/{file}")
    } else {
        format!("jobs.d/{file}:{location}")
    };
    assert!(
        run.stderr.contains(&at),
        "{file}: no {at:?} in\n{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(message),
        "{file}: no {message:?} in\n{}",
        run.stderr
    );
}

#[test]
fn valid_files_pass_in_both_formats() {
    Project::new()
        .file("jobs.d/a.yaml", job("0 2 * * *"))
        .file(
            "jobs.d/sub/b.toml",
            "schedule = \"@daily\"\nrun = \"echo hi\"\n",
        )
        .file("jobs.d/README.md", "not a job")
        .file("jobs.d/.hidden.yaml", "garbage: [")
        .file("jobs.d/a.yaml~", "garbage: [")
        .file("jobs.d/.#a.yaml", "garbage: [")
        .file("jobs.d/#a.yaml#", "garbage: [")
        .file("jobs.d/.git/x.yaml", "garbage: [")
        .run(&["validate"])
        .code(0)
        .stdout_has("2 jobs in 2 files");
}

#[test]
fn syntax_errors_point_at_the_line() {
    rejects(
        "a.yaml",
        b"command: [echo, hi\nschedule: '@daily'\n",
        "2:",
        "",
    );
    rejects("a.toml", b"command = [\"echo\"\nrun = \n", "2:", "");
    rejects(
        "a.yaml",
        b"schedule: @daily\ncommand: [x]\n",
        "1:11",
        "must be quoted",
    );
}

#[test]
fn unknown_keys_are_errors_with_a_suggestion() {
    rejects(
        "a.yaml",
        b"command: [x]\nschedul: '@daily'\n",
        "2:1",
        "did you mean `schedule`?",
    );
    rejects(
        "a.toml",
        b"command = [\"x\"]\nschedul = \"@daily\"\n",
        "2:1",
        "did you mean `schedule`?",
    );
    rejects(
        "a.yaml",
        b"command: [x]\nretry: {atempts: 2}\n",
        "2:9",
        "did you mean `attempts`?",
    );
    rejects(
        "a.yaml",
        b"command: [x]\nwebhook: {secret: hunter2}\n",
        "2:11",
        "never write a secret",
    );
}

#[test]
fn duplicate_keys_are_errors() {
    rejects(
        "a.yaml",
        b"command: [x]\ntimeout: 1m\ntimeout: 2m\n",
        "3:1",
        "duplicate key `timeout`",
    );
    rejects(
        "a.toml",
        b"command = [\"x\"]\ntimeout = \"1m\"\ntimeout = \"2m\"\n",
        "3:1",
        "duplicate key `timeout`",
    );
}

#[test]
fn wrong_types_say_what_was_expected() {
    rejects(
        "a.yaml",
        b"command: [x]\nenabled: yes\n",
        "2:10",
        "expected `true` or `false`",
    );
    rejects(
        "a.yaml",
        b"command: [x]\nretry: {attempts: many}\n",
        "2:19",
        "",
    );
    rejects(
        "a.toml",
        b"command = [\"x\"]\nenabled = \"no\"\n",
        "2:11",
        "expected a boolean",
    );
    rejects(
        "a.yaml",
        b"command: echo hi\n",
        "1:10",
        "`command` is a list of arguments, not a string",
    );
    rejects(
        "a.yaml",
        b"command: [x]\nconcurrency: forbidd\n",
        "2:14",
        "did you mean `forbid`?",
    );
}

#[test]
fn command_and_run_are_exactly_one() {
    rejects(
        "a.yaml",
        b"command: [x]\nrun: echo hi\n",
        "2:6",
        "both `command` and `run`",
    );
    rejects(
        "a.yaml",
        b"description: nothing to do\n",
        "1:1",
        "the job has no action; it needs exactly one of `command`, `run`, `http` or `prompt`",
    );
    rejects("a.yaml", b"command: []\n", "1:10", "`command` is empty");
}

#[test]
fn http_and_prompt_actions_are_checked_at_their_line_and_column() {
    for (content, location, message) in [
        (
            "command: [x]\nhttp: {url: 'http://h/'}\n",
            "2:7",
            "both `command` and `http` are set; a job has exactly one",
        ),
        (
            "http: {method: GTE, url: 'http://h/'}\n",
            "1:16",
            "http.method `GTE` is not one of GET, HEAD, POST",
        ),
        ("http: {method: GET}\n", "1:7", "http needs a `url`"),
        (
            "http:\n  url: ftp://h/x\n",
            "2:8",
            "http.url `ftp://h/x` has a scheme other than http or https",
        ),
        (
            "http:\n  url: http://h/\n  headers: {Authorization: Bearer abc}\n",
            "3:28",
            "header `Authorization` holds a credential written in the job file",
        ),
        (
            "http:\n  url: http://h/\n  headers: {X-Key: {env: 'a b'}}\n",
            "3:26",
            "header `X-Key`: `a b` is not a variable name",
        ),
        (
            "http:\n  url: http://h/\n  headers: {X-Key: {prefix: x}}\n",
            "3:20",
            "header `X-Key` needs exactly one of `env: VAR` or `secret_file: PATH`",
        ),
        (
            "http:\n  url: http://h/\n  expect: [200, 7xx]\n",
            "3:11",
            "http.expect `7xx` is not a status, a class or a range",
        ),
        (
            "http:\n  url: http://h/\n  timeout: 0s\n",
            "3:12",
            "http.timeout must be longer than 0s",
        ),
        (
            "http:\n  url: 'http://h/{{ params.who }}'\n",
            "2:8",
            "`http.url` uses `{{ params.who }}`, which is not a declared parameter",
        ),
        (
            "http:\n  url: http://h/\n  body: {a: '{{ params.x }}'}\n",
            "3:9",
            "`http.body` uses `{{ params.x }}`, which is not a declared parameter",
        ),
        (
            "http: {url: 'http://h/'}\nenv: {A: b}\n",
            "2:7",
            "`env` sets a process's environment; an `http` action starts no process",
        ),
        (
            "http: {url: 'http://h/'}\nshell: bash\n",
            "2:8",
            "`shell` only applies to `run`, not to `http`",
        ),
        (
            "http: {url: 'http://h/', verb: GET}\n",
            "1:26",
            "unknown field `verb`",
        ),
        (
            "prompt: {model: m, prompt: hi}\n",
            "1:9",
            "a prompt needs a provider, and jobs.toml has no `[llm]` with a `base_url`",
        ),
    ] {
        rejects("a.yaml", content.as_bytes(), location, message);
    }
    // With a provider configured, a prompt's own fields.
    for (content, location, message) in [
        ("prompt: {prompt: hi}\n", "1:9", "prompt needs `model`"),
        ("prompt: {model: m}\n", "1:9", "prompt needs `prompt`"),
        (
            "prompt: {model: m, prompt: ' '}\n",
            "1:28",
            "prompt.prompt is empty",
        ),
        (
            "prompt: {model: m, prompt: hi, provider: locl}\n",
            "1:42",
            "prompt.provider `locl` is not a provider of jobs.toml",
        ),
        (
            "prompt: {model: m, prompt: hi, temperature: 3}\n",
            "1:45",
            "prompt.temperature must be from 0 to 2 (it is 3)",
        ),
        (
            "prompt: {model: m, prompt: hi, max_tokens: 0}\n",
            "1:44",
            "prompt.max_tokens must be from 1 to 1000000 (it is 0)",
        ),
        (
            "prompt: {model: m, prompt: 'say {{ params.x }}'}\n",
            "1:28",
            "`prompt.prompt` uses `{{ params.x }}`, which is not a declared parameter",
        ),
    ] {
        let run = Project::new()
            .file(
                "jobs.toml",
                "[llm]\nbase_url = \"http://127.0.0.1:1/v1\"\n[llm.providers.local]\nbase_url = \"http://127.0.0.1:2/v1\"\n",
            )
            .file("jobs.d/a.yaml", content)
            .run(&["validate"]);
        assert_eq!(run.code, 1, "{content}: {}", run.stderr);
        let at = format!("jobs.d/a.yaml:{location}");
        assert!(
            run.stderr.contains(&at),
            "{content}: no {at:?} in\n{}",
            run.stderr
        );
        assert!(
            run.stderr.contains(message),
            "{content}: no {message:?} in\n{}",
            run.stderr
        );
    }
    // The help for a near miss of the provider's name.
    Project::new()
        .file(
            "jobs.toml",
            "[llm.providers.local]\nbase_url = \"http://127.0.0.1:2/v1\"\n",
        )
        .file(
            "jobs.d/a.yaml",
            "prompt: {model: m, prompt: hi, provider: locl}\n",
        )
        .run(&["validate"])
        .code(1)
        .stderr_has("did you mean `local`?");
}

#[test]
fn http_and_prompt_jobs_validate_in_both_formats() {
    Project::new()
        .file("jobs.toml", "[llm]\nbase_url = \"http://127.0.0.1:1/v1\"\napi_key_env = \"KEY\"\n")
        .file(
            "jobs.d/probe.yaml",
            "schedule: '*/5 * * * *'\nhttp:\n  url: https://example.com/health\n  expect: [200, 204]\n  timeout: 5s\n",
        )
        .file(
            "jobs.d/post.toml",
            "schedule = \"@daily\"\n[params.day]\ndefault = \"today\"\n[http]\nmethod = \"POST\"\nurl = \"https://example.com/refresh\"\nbody = { day = \"{{ params.day }}\", full = true }\n[http.headers]\nAuthorization = { env = \"TOKEN\", prefix = \"Bearer \" }\n",
        )
        .file(
            "jobs.d/summary.yaml",
            "schedule: '0 9 * * 1-5'\nprompt:\n  model: gpt-4o-mini\n  system: Be brief.\n  prompt: Summarise.\n  max_tokens: 300\n  temperature: 0.2\n",
        )
        .run(&["validate"])
        .code(0)
        .stdout_has("3 jobs in 3 files");
}

#[test]
fn bad_cron_points_at_the_field() {
    rejects(
        "a.yaml",
        b"schedule: \"0 25 * * *\"\ncommand: [x]\n",
        "1:14",
        "hour field `25`: 25 is out of range; expected 0-23",
    );
    rejects(
        "a.yaml",
        b"schedule: {cron: \"0 0 L * *\"}\ncommand: [x]\n",
        "1:23",
        "Quartz extension",
    );
    rejects(
        "a.yaml",
        b"schedule: \"0 0 30 2 *\"\ncommand: [x]\n",
        "1:12",
        "can never fire",
    );
    rejects(
        "a.yaml",
        b"schedule: \"0 0 0 * * *\"\ncommand: [x]\n",
        "1:22",
        "no seconds or year field",
    );
    rejects(
        "a.toml",
        b"schedule = \"0 0 * * 8\"\ncommand = [\"x\"]\n",
        "1:21",
        "expected 0-7",
    );
}

#[test]
fn unknown_time_zones_get_a_suggestion() {
    rejects(
        "a.yaml",
        b"schedule: '@daily'\ntimezone: America/NewYork\ncommand: [x]\n",
        "2:11",
        "did you mean `America/New_York`?",
    );
    rejects(
        "a.yaml",
        b"schedule: '@daily'\ntimezone: Mars/Olympus\ncommand: [x]\n",
        "2:11",
        "unknown time zone `Mars/Olympus`",
    );
}

#[test]
fn bad_durations_are_errors() {
    rejects(
        "a.yaml",
        b"schedule: {every: 0s}\ncommand: [x]\n",
        "1:19",
        "every must be longer than 0s",
    );
    rejects(
        "a.yaml",
        b"schedule: {every: soon}\ncommand: [x]\n",
        "1:19",
        "expected a duration such as",
    );
    rejects(
        "a.yaml",
        b"command: [x]\ntimeout: 1 month\n",
        "2:10",
        "no fixed length",
    );
    rejects("a.yaml", b"command: [x]\njitter: -5m\n", "2:9", "negative");
    rejects(
        "a.yaml",
        b"command: [x]\noutput_limit: 1 parsec\n",
        "2:15",
        "unknown size unit",
    );
}

#[test]
fn at_in_the_past_is_a_warning() {
    Project::new()
        .file(
            "jobs.d/a.yaml",
            "schedule: {at: 2020-01-01T00:00:00Z}\ncommand: [x]\n",
        )
        .run(&["validate"])
        .code(0)
        .stderr_has("jobs.d/a.yaml:1:16")
        .stderr_has("is in the past")
        .stdout_has("1 warning");
}

#[test]
fn names_come_from_files_and_are_unique() {
    rejects(
        "Bad Name.yaml",
        &job("@daily").into_bytes(),
        "",
        "starts with `B`",
    );
    rejects(
        "a.yaml",
        b"name: b\ncommand: [x]\n",
        "1:7",
        "`name: b` does not match the file's name `a`",
    );
    let run = Project::new()
        .file("jobs.d/one/backup.yaml", job("@daily"))
        .file("jobs.d/two/backup.toml", "command = [\"x\"]\n")
        .run(&["validate"])
        .code(1);
    assert!(
        run.stderr.contains(
            "job `backup` is also defined in jobs.d/two/backup.toml\n--> jobs.d/one/backup.yaml"
        ),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains(
            "job `backup` is also defined in jobs.d/one/backup.yaml\n--> jobs.d/two/backup.toml"
        ),
        "{}",
        run.stderr
    );
}

#[test]
fn dependencies_must_exist_and_not_cycle() {
    Project::new()
        .file(
            "jobs.d/report.yaml",
            "command: [x]\ndepends_on: [extract, transfrom]\n",
        )
        .file("jobs.d/extract.yaml", "command: [x]\n")
        .file("jobs.d/transform.yaml", "command: [x]\n")
        .run(&["validate"])
        .code(1)
        .stderr_has("jobs.d/report.yaml:2:23")
        .stderr_has("depends_on names `transfrom`, but there is no such job")
        .stderr_has("did you mean `transform`?");
    Project::new()
        .file("jobs.d/a.yaml", "command: [x]\ndepends_on: [b]\n")
        .file("jobs.d/b.yaml", "command: [x]\nschedule: {after: [c]}\n")
        .file("jobs.d/c.yaml", "command: [x]\ndepends_on: [a]\n")
        .run(&["validate"])
        .code(1)
        .stderr_has("dependency cycle: a -> b -> c -> a");
}

#[test]
fn empty_binary_huge_and_multi_document_files_are_errors() {
    rejects("a.yaml", b"", "", "the file is empty");
    rejects("a.yaml", b"# only a comment\n", "", "the file is empty");
    rejects(
        "a.yaml",
        b"command: [x]\ndescription: caf\xe9\n",
        "2:17",
        "not valid UTF-8",
    );
    let mut huge = b"command: [x]\ndescription: \"".to_vec();
    huge.extend(std::iter::repeat_n(b'x', 1 << 20));
    huge.extend(b"\"\n");
    rejects("a.yaml", &huge, "", "larger than 1048576 bytes");
    rejects(
        "a.yaml",
        b"command: [x]\n---\ncommand: [y]\n",
        "3:1",
        "more than one YAML document",
    );
}

#[test]
fn an_alias_bomb_is_stopped_quickly() {
    // The classic "billion laughs", nested inside a field that takes a map of maps, so the
    // parser has to expand it rather than stop at an unknown key.
    let mut bomb = String::from("command: [x]\nparams:\n  p0: &a {description: lol}\n");
    let mut previous = "a".to_string();
    for level in 1..=9 {
        let name = format!("l{level}");
        let refs = vec![format!("*{previous}"); 9].join(", ");
        bomb.push_str(&format!("  p{level}: &{name} {{default: [{refs}]}}\n"));
        previous = name;
    }
    let started = std::time::Instant::now();
    rejects("a.yaml", bomb.as_bytes(), "", "");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

#[cfg(unix)]
#[test]
fn unreadable_files_and_symlink_loops_are_reported() {
    let p = Project::new().file("jobs.d/ok.yaml", job("@daily"));
    std::os::unix::fs::symlink("nowhere.yaml", p.path("jobs.d/dangling.yaml")).unwrap();
    std::os::unix::fs::symlink("..", p.path("jobs.d/loop")).unwrap();
    p.run(&["validate"])
        .code(1)
        .stderr_has("jobs.d/dangling.yaml")
        .stderr_has("dangling symlink")
        .stderr_has("symlink loop");
}

#[test]
fn every_problem_in_every_file_is_printed() {
    Project::new()
        .file(
            "jobs.d/a.yaml",
            "schedule: \"0 99 * * *\"\ntimezone: Nowhere/Land\ncommand: [x]\ntimeout: forever\n",
        )
        .file("jobs.d/b.yaml", "command: [x]\nrun: y\n")
        .file("jobs.d/c.yaml", job("@hourly"))
        .run(&["validate"])
        .code(1)
        .stderr_has("jobs.d/a.yaml:1:14")
        .stderr_has("jobs.d/a.yaml:2:11")
        .stderr_has("jobs.d/a.yaml:4:10")
        .stderr_has("jobs.d/b.yaml:2:6")
        .stderr_has("4 errors, 0 warnings in 3 files");
}

#[test]
fn validate_json_lists_diagnostics() {
    let run = Project::new()
        .file("jobs.d/a.yaml", "command: [x]\nschedul: x\n")
        .run(&["validate", "--output", "json"])
        .code(1);
    let v = run.json();
    assert_eq!(v["valid"], false);
    assert_eq!(v["diagnostics"][0]["file"], "jobs.d/a.yaml");
    assert_eq!(v["diagnostics"][0]["line"], 2);
    assert_eq!(v["diagnostics"][0]["column"], 1);
    assert_eq!(v["diagnostics"][0]["severity"], "error");
    assert_eq!(v["diagnostics"][0]["help"], "did you mean `schedule`?");
}

#[test]
fn a_missing_jobs_folder_says_how_to_make_one() {
    Project::new()
        .run(&["validate"])
        .code(1)
        .stderr_has("the jobs folder does not exist")
        .stderr_has("jobctl init");
}

#[test]
fn the_shipped_examples_validate() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("jobs.d");
    Project::new()
        .run(&["--dir", examples.to_str().unwrap(), "validate"])
        .code(0)
        .stdout_has("7 jobs in 7 files");
}

#[test]
fn every_value_rule_has_a_message() {
    for (content, location, message) in [
        (
            "schedule: {cron: '@daily', every: 5m}\ncommand: [x]\n",
            "1:11",
            "has cron and every; a schedule is one of them",
        ),
        (
            "schedule: {start_at: 2030-01-01T00:00:00Z}\ncommand: [x]\n",
            "1:11",
            "has none of `cron`, `every`, `at`, `after`",
        ),
        (
            "schedule: {at: 2030-01-01T00:00:00Z, start_at: 2030-01-01T00:00:00Z}\ncommand: [x]\n",
            "1:48",
            "`start_at` only applies to `every`",
        ),
        (
            "schedule: {at: tomorrow}\ncommand: [x]\n",
            "1:16",
            "is not a date-time",
        ),
        (
            "schedule: {after: []}\ncommand: [x]\n",
            "1:11",
            "`after` lists no jobs",
        ),
        (
            "command: [x]\nshell: bash\n",
            "2:8",
            "`shell` only applies to `run`",
        ),
        ("run: '  '\n", "1:6", "`run` is empty"),
        (
            "command: [x]\nenv: {1BAD: x}\n",
            "2:7",
            "not a valid environment variable name",
        ),
        (
            "command: [x]\nenv: {JOBS_JOB: x}\n",
            "2:7",
            "reserved for jobs",
        ),
        (
            "command: [x]\ndepends_on: [a]\n",
            "2:14",
            "a job cannot depend on itself",
        ),
        (
            "command: [x]\nparams: {bad-name: {}}\n",
            "2:10",
            "parameter name `bad-name` is not valid",
        ),
        (
            "command: [x]\nparams: {p: {required: true, default: x}}\n",
            "2:13",
            "is required and has a default",
        ),
        (
            "command: [x]\nwebhook: {secret_env: A, secret_file: /b}\n",
            "2:10",
            "exactly one of `secret_env: VAR` or `secret_file: PATH`",
        ),
        (
            "command: [x]\nwebhook: {secret_env: 'not valid'}\n",
            "2:23",
            "not a valid environment variable name",
        ),
        (
            "command: [x]\nrepeat: {times: 0}\n",
            "2:17",
            "repeat.times must be at least 1",
        ),
        (
            "command: [x]\nrepeat: {until: failure}\n",
            "2:17",
            "is not `success`",
        ),
        (
            "command: [x]\nhistory: {keep_runs: 0}\n",
            "2:22",
            "history.keep_runs must be at least 1",
        ),
        (
            "command: [x]\nretry: {backoff: 10m, max_backoff: 1m}\n",
            "2:8",
            "is shorter than retry.backoff",
        ),
        (
            "command: [x]\ntags: ['two words']\n",
            "2:8",
            "without spaces or commas",
        ),
        (
            "command: [x]\nmissed: sometimes\n",
            "2:9",
            "not one of `skip`, `run_once`",
        ),
        (
            "command: [x]\noutput_limit: 0\n",
            "2:15",
            "output_limit must be larger than 0",
        ),
        (
            "command: [x]\nsuccess_when: {output_matches: 'a(b'}\n",
            "2:32",
            "`a(b` is not a regular expression: unclosed group",
        ),
        (
            "command: [x]\nsuccess_when: {output_matches: a, output_not_matches: b}\n",
            "2:15",
            "success_when needs exactly one of `output_matches: REGEX` or `output_not_matches: REGEX`",
        ),
        (
            "command: [x]\nsuccess_when: {output_contains: a}\n",
            "2:16",
            "unknown field `output_contains`",
        ),
    ] {
        rejects("a.yaml", content.as_bytes(), location, message);
    }
}

#[test]
fn a_locked_ledger_during_apply_is_an_error_not_a_panic() {
    // The ledger opens (and migrates) fine, then another writer holds it: apply must report it.
    let p = Project::new().file("jobs.d/a.yaml", job("@daily"));
    p.run(&["apply"]).code(0);
    p.write("jobs.d/b.yaml", job("@hourly"));
    let holder = rusqlite::Connection::open(p.path(".jobs/ledger.db")).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    let run = p
        .run_with(&["apply"], &[("JOBS_LOCK_WAIT", "100ms")])
        .code(1);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);
    assert!(
        run.stderr.contains("is locked by another process"),
        "{}",
        run.stderr
    );
}

#[test]
fn parameter_placeholders_must_name_declared_parameters_and_stay_out_of_run() {
    let cases: [(&str, &str, &str); 4] = [
        (
            "command: [echo, \"{{ params.branch }}\"]\n",
            "1:10",
            "`command` element 2 uses `{{ params.branch }}`, which is not a declared parameter (the job declares no `params`)",
        ),
        (
            "command: [echo, \"{{ env.HOME }}\"]\nparams:\n  a: {}\n",
            "1:10",
            "only `{{ params.NAME }}` is substituted",
        ),
        (
            "run: echo {{ params.a }}\nparams:\n  a: {}\n",
            "1:6",
            "`run` scripts are not templated",
        ),
        (
            "command: [\"true\"]\nenv:\n  WHERE: \"to {{ params.b }}\"\nparams:\n  a: {}\n",
            "3:10",
            "`env.WHERE` uses `{{ params.b }}`, which is not a declared parameter (declared: a)",
        ),
    ];
    for (content, location, message) in cases {
        rejects("job.yaml", content.as_bytes(), location, message);
    }
}

#[test]
fn notifications_validate_in_both_formats() {
    Project::new()
        .file(
            "jobs.d/a.yaml",
            "command: [x]\non_failure:\n  - webhook: http://127.0.0.1:9000/hook\n  - run: 'echo \"$JOBS_JOB failed\" | mail ops'\n    after: 3\non_success:\n  - webhook: https://example.com/ok\n",
        )
        .file(
            "jobs.d/b.toml",
            "command = [\"x\"]\n[[on_failure]]\nrun = \"echo failed\"\nafter = 1\n[[on_success]]\nwebhook = \"http://[::1]:8080/ok?token=t\"\n",
        )
        .run(&["validate"])
        .code(0)
        .stdout_has("2 jobs in 2 files");
}

#[test]
fn notification_rules_have_messages() {
    for (file, content, location, message) in [
        (
            "a.yaml",
            "command: [x]\non_success:\n  - run: echo\n    after: 2\n",
            "4:12",
            "on_success item 1: `after` is only allowed in `on_failure`",
        ),
        (
            "a.toml",
            "command = [\"x\"]\n[[on_success]]\nrun = \"echo\"\nafter = 2\n",
            "4:9",
            "`after` is only allowed in `on_failure`, not in `on_success`",
        ),
        (
            "a.yaml",
            "command: [x]\non_failure:\n  - run: echo\n  - {webhook: 'http://h/x', run: echo}\n",
            "4:5",
            "on_failure item 2 has both `webhook` and `run`; it needs exactly one",
        ),
        (
            "a.yaml",
            "command: [x]\non_failure:\n  - after: 2\n",
            "3:5",
            "on_failure item 1 has none of `webhook`, `slack`, `email`, `run`",
        ),
        (
            "a.yaml",
            "command: [x]\non_failure:\n  - webhook: ftp://x\n",
            "3:14",
            "webhook `ftp://x` has a scheme other than http or https; expected an http:// or https:// URL",
        ),
        (
            "a.yaml",
            "command: [x]\non_success:\n  - webhook: not a url\n",
            "3:14",
            "webhook `not a url` is not a URL; expected an http:// or https:// URL",
        ),
        (
            "a.yaml",
            "command: [x]\non_failure:\n  - webhook: 'http:///path'\n",
            "3:14",
            "has no host",
        ),
        (
            "a.yaml",
            "command: [x]\non_failure:\n  - run: '  '\n",
            "3:10",
            "on_failure item 1: `run` is empty",
        ),
        (
            "a.yaml",
            "command: [x]\non_failure:\n  - run: echo\n    after: 0\n",
            "4:12",
            "`after` must be at least 1",
        ),
        (
            "a.yaml",
            "command: [x]\non_failure:\n  - webhok: http://h/x\n",
            "3:5",
            "did you mean `webhook`?",
        ),
        (
            "a.yaml",
            "command: [x]\non_falure:\n  - run: echo\n",
            "2:1",
            "did you mean `on_failure`?",
        ),
    ] {
        rejects(file, content.as_bytes(), location, message);
    }
}

/// `jobs.toml` is checked like a job file: every problem at once, each at its line and column
/// with its line drawn, and nothing runs (`validate` and `serve` alike).
#[test]
fn a_bad_jobs_toml_reports_every_problem_at_once() {
    let p = Project::new().file("jobs.d/a.yaml", job("@daily")).file(
        "jobs.toml",
        "timezon = \"UTC\"\n[daemon]\nmax_concurrent_runs = 0\n[server]\nbody_limit = \"4 XB\"\n",
    );
    let expected = [
        "jobs.toml:1:1",
        "unknown field `timezon`",
        "help: did you mean `timezone`?",
        "jobs.toml:3:23",
        "daemon.max_concurrent_runs must be at least 1",
        "jobs.toml:5:14",
        "server.body_limit: unknown size unit `XB` in `4 XB`",
        "5 | body_limit = \"4 XB\"",
    ];
    let validate = p.run(&["validate"]).code(1);
    let serve = p
        .run_within(
            std::time::Duration::from_secs(30),
            &["serve", "--listen", "127.0.0.1:0"],
        )
        .code(1);
    for run in [validate, serve] {
        for text in expected {
            assert!(run.stderr.contains(text), "no {text:?} in\n{}", run.stderr);
        }
        assert!(!run.stdout.contains("valid"), "{}", run.stdout);
    }
}
