//! The web dashboard in a real browser: headless Chromium driven through WebDriver
//! (`chromium` and `chromium-driver`, which `.ci/run` installs), against a real `jobctl serve`
//! on port 0. Screenshots of each page land in `target/dashboard/` (light and dark, desktop
//! and phone width) for a person to look at.

mod common;

use std::io::BufRead as _;
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Daemon, Project};
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

const ADMIN: &str = "aaaaaaaaaaaaaaaaaaaaaaaa";
const READER: &str = "rrrrrrrrrrrrrrrrrrrrrrrr";

/// How long the browser waits for what a page must show.
const WAIT: Duration = Duration::from_secs(20);

/// A `chromedriver` of the test's own, stopped when dropped, with a temp dir of its own
/// (its `TMPDIR`, where Chromium keeps its profile and scratch files) removed after it.
struct Driver {
    child: Child,
    url: String,
    _tmp: tempfile::TempDir,
}

impl Drop for Driver {
    /// Kills `chromedriver` with the browser it started (the whole process group: a session
    /// not closed, or closed while the browser was still exiting, would leave Chromium's
    /// processes running after the test).
    fn drop(&mut self) {
        // SAFETY: kill has no memory effects; the group is the driver's own (`process_group(0)`).
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `chromedriver` on a free port and waits for it to say it is listening. The
/// browser's zone is UTC, so times render the same on every machine.
fn driver() -> Driver {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .process_group(0)
        .env("TMPDIR", tmp.path())
        .env("TZ", "UTC")
        .env("LANG", "en_US.UTF-8")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver: install Debian's chromium and chromium-driver (see .ci/run)");
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufReader::new(stdout).lines();
    loop {
        let line = lines
            .next()
            .expect("chromedriver stopped before it listened")
            .unwrap();
        if line.contains("started successfully") {
            break;
        }
    }
    // Keep draining its output so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
        _tmp: tmp,
    }
}

/// A headless Chromium window `width` × `height`, dark when `dark`.
async fn browser(driver: &Driver, width: u32, height: u32, dark: bool) -> Client {
    let mut args = vec![
        "--headless=new".to_string(),
        "--no-sandbox".to_string(),
        "--disable-gpu".to_string(),
        "--disable-dev-shm-usage".to_string(),
        "--lang=en-US".to_string(),
        format!("--window-size={width},{height}"),
    ];
    if dark {
        args.push("--force-dark-mode".to_string());
        args.push("--blink-settings=preferredColorScheme=0".to_string());
    }
    let mut options = json!({ "args": args, "binary": "/usr/bin/chromium" });
    // Below Chromium's smallest window (500 px), a phone is emulated.
    if width < 500 {
        options["mobileEmulation"] = json!({
            "deviceMetrics": { "width": width, "height": height, "pixelRatio": 2, "touch": true }
        });
    }
    let mut caps = serde_json::Map::new();
    caps.insert("goog:chromeOptions".to_string(), options);
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a WebDriver session")
}

fn project() -> Project {
    Project::new()
        .file(
            "jobs.d/nightly-report.yaml",
            "description: The nightly report\nschedule: \"30 2 * * *\"\ntimezone: Europe/Paris\n\
             tags: [reports]\ncommand: [echo, report]\n",
        )
        .file(
            "jobs.d/deploy.yaml",
            "description: Deploy a version\ntags: [ops]\n\
             params:\n  version:\n    required: true\ncommand: [echo, \"{{ params.version }}\"]\n",
        )
        .file(
            "tokens",
            format!("admin alice {ADMIN}\nread bob {READER}\n"),
        )
}

/// A served project and a browser on it: `jobctl apply`, then `jobctl serve` (with the
/// project's token file when `tokens`), its base URL, a chromedriver and a window
/// `width` × `height`.
async fn open(
    p: &Project,
    tokens: bool,
    width: u32,
    height: u32,
) -> (Daemon, String, Driver, Client) {
    p.run(&["apply"]).code(0);
    let args: &[&str] = if tokens {
        &["--token-file", "tokens"]
    } else {
        &[]
    };
    let mut daemon = p.serve(args, None);
    let base = daemon.url();
    let driver = driver();
    let client = browser(&driver, width, height, false).await;
    (daemon, base, driver, client)
}

async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.unwrap();
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("dashboard");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// The text of the first element matching `css`, once there is one. An element the page
/// re-renders between the find and the read (stale) is found again.
async fn text_of(client: &Client, css: &str) -> String {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        match client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(element) => match element.text().await {
                Ok(text) => return text,
                Err(fantoccini::error::CmdError::Standard(e))
                    if e.error == fantoccini::error::ErrorStatus::StaleElementReference
                        && std::time::Instant::now() < deadline => {}
                Err(e) => panic!("reading `{css}`: {e}"),
            },
            Err(e) => {
                let url = client.current_url().await;
                let body = client.source().await.unwrap_or_default();
                panic!("no `{css}` on {url:?}: {e}\n{body}")
            }
        }
    }
}

/// How many elements match `css`, once that is `want` (or, after [`WAIT`], whatever it is):
/// a page re-renders a list when its fetch answers, after the URL has changed.
async fn rows_settle_at(client: &Client, css: &str, want: usize) -> usize {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let n = client.find_all(Locator::Css(css)).await.unwrap().len();
        if n == want || std::time::Instant::now() >= deadline {
            return n;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Logs in through the login page with `token`.
async fn log_in(client: &Client, base: &str, token: &str) {
    client.goto(&format!("{base}/")).await.unwrap();
    // Not logged in: sent to the login page, which says where the page was.
    let field = client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Id("token"))
        .await
        .expect("the login page");
    let url = client.current_url().await.unwrap();
    assert_eq!(url.path(), "/login", "{url}");
    field.send_keys(token).await.unwrap();
    client
        .find(Locator::Css("form button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jobs_page_lists_jobs_for_a_reader_and_refuses_forged_writes() {
    let p = project();
    let (daemon, base, _driver, client) = open(&p, true, 1280, 860).await;

    // A wrong token is refused with the server's message, and the token is not in the URL.
    log_in(&client, &base, "not-a-token-at-all-no").await;
    let error = text_of(&client, ".login .error").await;
    assert!(error.contains("the token is not valid"), "{error}");

    client.goto(&format!("{base}/")).await.unwrap();
    log_in(&client, &base, READER).await;
    let table = text_of(&client, "table.jobs tbody").await;
    for want in [
        "nightly-report",
        "The nightly report",
        "30 2 * * *",
        "Europe/Paris",
        "deploy",
        "manual",
        "never ran",
    ] {
        assert!(table.contains(want), "{want:?} missing from {table}");
    }
    let url = client.current_url().await.unwrap();
    assert_eq!(url.path(), "/");
    assert!(!url.as_str().contains(READER), "{url}");
    // The next fire of the cron job is shown, in the viewer's zone (UTC here): 02:30 in
    // Paris on 1 November 2026 (CET, UTC+1) is 01:30 UTC.
    let next = text_of(&client, "table.jobs tbody tr:first-child time").await;
    assert!(next.contains("01:30"), "{next}");
    // Counted down on the server's clock (started at 12:00 UTC), not the browser's.
    let countdown = text_of(
        &client,
        "table.jobs tbody tr:first-child td:nth-child(5) .sub",
    )
    .await;
    assert!(countdown.starts_with("in 13h"), "{countdown}");
    let who = text_of(&client, "header .who").await;
    assert!(who.contains("bob") && who.contains("read"), "{who}");
    screenshot(&client, "jobs-light-desktop").await;

    // Filters live in the URL: a search narrows the list.
    let search = client
        .find(Locator::Css("input[type=search]"))
        .await
        .unwrap();
    search.send_keys("nightly").await.unwrap();
    client
        .wait()
        .at_most(WAIT)
        .for_url(&url::Url::parse(&format!("{base}/?q=nightly")).unwrap())
        .await
        .unwrap();
    // The URL changes first; the list follows when the server answers.
    assert_eq!(rows_settle_at(&client, "table.jobs tbody tr", 1).await, 1);

    // The session cookie is HttpOnly (no script reads it), and a write made with it from
    // elsewhere is refused: without the dashboard's header, or from another origin.
    let cookies = client.get_all_cookies().await.unwrap();
    let session = cookies
        .iter()
        .find(|c| c.name() == "jobs_session")
        .expect("the session cookie");
    assert_eq!(session.http_only(), Some(true));
    assert!(!session.value().contains(READER));
    let document_cookie = client
        .execute("return document.cookie", vec![])
        .await
        .unwrap();
    assert_eq!(document_cookie, json!(""));
    let cookie = format!("jobs_session={}", session.value());
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build(),
    );
    let trigger = format!("{base}/v1/jobs/nightly-report/trigger");
    let forged = agent
        .post(&trigger)
        .header("cookie", &cookie)
        .send_empty()
        .unwrap();
    assert_eq!(forged.status(), 403);
    let forged = agent
        .post(&trigger)
        .header("cookie", &cookie)
        .header("x-jobs-dashboard", "1")
        .header("origin", "https://evil.example")
        .send_empty()
        .unwrap();
    assert_eq!(forged.status(), 403);
    // With the header and from here, the read token is still only a reader.
    let mut own = agent
        .post(&trigger)
        .header("cookie", &cookie)
        .header("x-jobs-dashboard", "1")
        .header("origin", &base)
        .send_empty()
        .unwrap();
    assert_eq!(own.status(), 403);
    let body = own.body_mut().read_to_string().unwrap();
    assert!(body.contains("only read"), "{body}");

    // Logging out forgets the session: the page goes back to the login form, and the old
    // cookie's page asks for a login again.
    client
        .find(Locator::Css("header .who button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Id("token"))
        .await
        .unwrap();
    assert!(
        client
            .get_all_cookies()
            .await
            .unwrap()
            .iter()
            .all(|c| c.name() != "jobs_session")
    );
    client.close().await.unwrap();
    daemon.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_are_screenshot_light_and_dark_on_desktop_and_phone() {
    let p = project();
    p.run(&["apply"]).code(0);
    let mut daemon = p.serve(&["--token-file", "tokens"], None);
    let base = daemon.url();
    let driver = driver();
    for (name, width, height, dark) in [
        ("desktop-dark", 1280, 860, true),
        ("phone-light", 390, 844, false),
        ("phone-dark", 390, 844, true),
    ] {
        let client = browser(&driver, width, height, dark).await;
        log_in(&client, &base, ADMIN).await;
        let table = text_of(&client, "table.jobs tbody").await;
        assert!(table.contains("nightly-report"), "{table}");
        if dark {
            let background = client
                .execute(
                    "return getComputedStyle(document.body).backgroundColor",
                    vec![],
                )
                .await
                .unwrap();
            assert_eq!(background, json!("rgb(13, 17, 23)"), "{name}");
        }
        screenshot(&client, &format!("jobs-{name}")).await;
        // Logged in, /login goes on to the jobs; logged out, it shows the form.
        click(&client, "header .who button").await;
        client
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Id("token"))
            .await
            .unwrap();
        screenshot(&client, &format!("login-{name}")).await;
        client.close().await.unwrap();
    }
    daemon.stop();
}

async fn click(client: &Client, css: &str) {
    client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no `{css}`: {e}"))
        .click()
        .await
        .unwrap();
}

/// Waits until the text of `css` holds `want`.
async fn wait_text(client: &Client, css: &str, want: &str) -> String {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let text = match client.find(Locator::Css(css)).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if text.contains(want) {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "`{css}` never held {want:?}; last: {text:?}"
        );
        // The browser's own clock drives the page; WebDriver has no change notification.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_triggers_with_a_parameter_watches_the_output_live_and_pauses() {
    let p = project().file(
        "jobs.d/greet.yaml",
        "description: Greets, then waits for the test\n\
         params:\n  who:\n    required: true\n    description: Whom to greet\n\
         run: |\n  echo \"hello $JOBS_PARAM_WHO\"\n  echo \"to stderr\" >&2\n  \
         while [ ! -e go ]; do sleep 0.05; done\n  echo done\n",
    );
    let (mut daemon, base, _driver, client) = open(&p, true, 1280, 900).await;
    log_in(&client, &base, ADMIN).await;
    text_of(&client, "table.jobs tbody").await;

    // The job page's trigger form is built from the job's params; the required one is marked.
    click(&client, "a[href='/jobs/greet']").await;
    let form = text_of(&client, "form[aria-labelledby=trigger-h]").await;
    assert!(
        form.contains("who") && form.contains("Whom to greet"),
        "{form}"
    );
    client
        .find(Locator::Css("input[name=param-who]"))
        .await
        .unwrap()
        .send_keys("operators")
        .await
        .unwrap();
    click(
        &client,
        "form[aria-labelledby=trigger-h] button[type=submit]",
    )
    .await;

    // The run page follows the output while the run is going: stdout and stderr apart.
    wait_text(&client, "pre.output", "hello operators").await;
    let url = client.current_url().await.unwrap();
    assert!(url.path().starts_with("/runs/"), "{url}");
    wait_text(&client, "pre.output .err", "to stderr").await;
    let heading = text_of(&client, "#output-h").await;
    assert!(heading.contains("following"), "{heading}");
    screenshot(&client, "run-live").await;
    std::fs::write(p.path("go"), "").unwrap();
    wait_text(&client, "pre.output", "done").await;
    wait_text(&client, "h1", "succeeded").await;
    let facts = text_of(&client, "dl.facts").await;
    assert!(facts.contains("who=operators"), "{facts}");
    assert!(facts.contains("exit 0"), "{facts}");
    screenshot(&client, "run-done").await;

    // The timeline draws the past run and the coming fires on one axis (3 days: the nightly
    // report fires at 01:30 UTC, 13.5 hours after the clock's start).
    client
        .goto(&format!("{base}/timeline?span=3d"))
        .await
        .unwrap();
    let run_bar = client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css(
            "svg.timeline a[href^='/runs/'] rect.s-succeeded",
        ))
        .await
        .expect("the run's bar");
    let label = run_bar.text().await.unwrap_or_default();
    let _ = label;
    let fires = client
        .find_all(Locator::Css("svg.timeline rect.fire"))
        .await
        .unwrap();
    assert!(!fires.is_empty(), "no coming fire drawn");
    let title = fires[0]
        .find(Locator::Css("title"))
        .await
        .unwrap()
        .prop("textContent")
        .await
        .unwrap()
        .unwrap_or_default();
    assert!(title.starts_with("nightly-report fires"), "{title}");
    screenshot(&client, "timeline").await;
    click(&client, ".segmented button:nth-child(2)").await;
    let heat = wait_text(&client, "main", "busiest hour").await;
    assert!(heat.contains("1 fire"), "{heat}");
    screenshot(&client, "timeline-week").await;

    // A second run: the job page charts both, duration and outcome, each bar a link.
    let mut second = p.spawn(&["trigger", "greet", "--param", "who=again", "--wait"]);
    let _ = second.0.wait();
    client.goto(&format!("{base}/jobs/greet")).await.unwrap();
    client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css(
            "svg.durations a[href^='/runs/'] rect.s-succeeded",
        ))
        .await
        .expect("the duration chart");
    let bars = client
        .find_all(Locator::Css("svg.durations rect.bar"))
        .await
        .unwrap();
    assert_eq!(bars.len(), 2);

    // A changed file is a new revision: the job page lists both and shows the diff.
    p.write(
        "jobs.d/greet.yaml",
        std::fs::read_to_string(p.path("jobs.d/greet.yaml"))
            .unwrap()
            .replace("Greets, then waits", "Greets warmly, then waits"),
    );
    daemon.wait_for("reconciled: applied", &[]);
    client.goto(&format!("{base}/jobs/greet")).await.unwrap();
    let diff = wait_text(&client, "pre.diff", "+description: Greets warmly").await;
    assert!(diff.contains("-description: Greets, then waits"), "{diff}");
    let revisions = text_of(&client, "section[aria-labelledby=revs-h] tbody").await;
    assert_eq!(revisions.lines().count(), 2, "{revisions}");

    // Pause with a reason: the jobs page says who and why.
    client.goto(&format!("{base}/jobs/greet")).await.unwrap();
    client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css("input[name=reason]"))
        .await
        .unwrap()
        .send_keys("deploy freeze")
        .await
        .unwrap();
    click(&client, "form[aria-labelledby=pause-h] button[type=submit]").await;
    wait_text(&client, "form[aria-labelledby=pause-h]", "deploy freeze").await;
    screenshot(&client, "job").await;
    client.goto(&format!("{base}/?q=greet")).await.unwrap();
    let row = wait_text(&client, "table.jobs tbody", "paused").await;
    assert!(
        row.contains("alice (api)") && row.contains("deploy freeze"),
        "{row}"
    );
    // Its strip of recent runs links the run, coloured by its outcome.
    client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css(".strip a.s-succeeded[href^='/runs/']"))
        .await
        .expect("the strip of recent runs");

    // A broken file shows on the status page with its line; the job keeps its revision.
    p.write(
        "jobs.d/broken.yaml",
        "schedule: \"0 3 * * *\"\ncommand: [echo]\nretries: lots\n",
    );
    daemon.wait_for("keeps its last applied revision", &[]);
    client.goto(&format!("{base}/status")).await.unwrap();
    let problems = text_of(&client, "pre.problems").await;
    assert!(problems.contains("broken.yaml:3"), "{problems}");
    screenshot(&client, "status").await;
    client.close().await.unwrap();
    daemon.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_sees_no_buttons_that_change_anything() {
    let p = project();
    let (daemon, base, _driver, client) = open(&p, true, 1280, 860).await;
    log_in(&client, &base, READER).await;
    text_of(&client, "table.jobs tbody").await;
    client.goto(&format!("{base}/jobs/deploy")).await.unwrap();
    wait_text(&client, "dl.facts", "deploy.yaml").await;
    let forms = client.find_all(Locator::Css("form")).await.unwrap();
    assert!(forms.is_empty(), "a reader got {} forms", forms.len());
    client.close().await.unwrap();
    daemon.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_graph_draws_each_link_and_opens_a_job() {
    let p = project()
        .file(
            "jobs.d/build.yaml",
            "command: [\"true\"]
",
        )
        .file(
            "jobs.d/ship.yaml",
            "schedule: {after: [build]}\ncommand: [\"true\"]\n",
        )
        .file(
            "jobs.d/audit.yaml",
            "schedule: \"0 4 * * *\"\ndepends_on: [build]\ncommand: [\"true\"]\n",
        );
    let (daemon, base, _driver, client) = open(&p, true, 1280, 700).await;
    log_in(&client, &base, READER).await;
    text_of(&client, "table.jobs tbody").await;
    client.goto(&format!("{base}/graph")).await.unwrap();
    text_of(&client, "svg.graph").await;
    let mut edges = Vec::new();
    for e in client
        .find_all(Locator::Css("svg.graph path.edge"))
        .await
        .unwrap()
    {
        let title = e
            .find(Locator::Css("title"))
            .await
            .unwrap()
            .prop("textContent")
            .await
            .unwrap()
            .unwrap_or_default();
        edges.push(title);
    }
    edges.sort();
    assert_eq!(
        edges,
        ["build → audit (depends on)", "build → ship (after)"]
    );
    let legend = text_of(&client, "main .legend").await;
    assert!(legend.contains("2 jobs without links"), "{legend}");
    screenshot(&client, "graph").await;
    click(&client, "svg.graph a[href='/jobs/ship']").await;
    wait_text(&client, "h1", "ship").await;
    client.close().await.unwrap();
    daemon.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_tokens_says_how_to_set_one() {
    let p = project();
    let (daemon, base, _driver, client) = open(&p, false, 1280, 700).await;
    client.goto(&format!("{base}/")).await.unwrap();
    let page = wait_text(&client, "main", "no tokens configured").await;
    assert!(page.contains("--token-file"), "{page}");
    assert!(
        client
            .find_all(Locator::Id("token"))
            .await
            .unwrap()
            .is_empty()
    );
    client.close().await.unwrap();
    daemon.stop();
}

/// axe-core's serious and critical violations on the page shown, as `rule: targets`.
async fn axe(client: &Client, source: &str) -> Vec<String> {
    client
        .execute(source, vec![])
        .await
        .expect("axe-core loads");
    let result = client
        .execute_async(
            "const done = arguments[arguments.length - 1];\
             axe.run(document, { resultTypes: ['violations'] })\
               .then((r) => done(r.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')\
                 .map((v) => v.id + ': ' + v.nodes.map((n) => n.target.join(' ')).join(', '))))\
               .catch((e) => done(['axe failed: ' + e]));",
            vec![],
        )
        .await
        .unwrap();
    serde_json::from_value(result).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_has_no_serious_accessibility_violations() {
    // axe-core from npm, fetched by .ci/run into target/axe-core (see the README).
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("axe-core/axe.min.js");
    let source = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; fetch it with: mkdir -p target/axe-core && curl -sSfL \
             https://registry.npmjs.org/axe-core/-/axe-core-4.14.1.tgz | tar xzO package/axe.min.js \
             > target/axe-core/axe.min.js",
            path.display()
        )
    });
    let p = project()
        .file("jobs.d/build.yaml", "command: [\"true\"]\n")
        .file(
            "jobs.d/ship.yaml",
            "schedule: {after: [build]}\ncommand: [\"true\"]\n",
        );
    let (mut daemon, base, _driver, client) = open(&p, true, 1280, 860).await;
    p.run(&["trigger", "nightly-report"]).code(0);
    daemon.wait_for("run ended", &[("job", "nightly-report")]);
    client.goto(&format!("{base}/login")).await.unwrap();
    text_of(&client, "#token").await;
    let mut found = Vec::new();
    found.extend(
        axe(&client, &source)
            .await
            .into_iter()
            .map(|v| format!("/login {v}")),
    );
    log_in(&client, &base, ADMIN).await;
    text_of(&client, "table.jobs tbody").await;
    for (page, ready) in [
        ("/", "table.jobs tbody tr td .strip a"),
        ("/jobs/deploy", "form[aria-labelledby=trigger-h]"),
        (
            "/jobs/nightly-report",
            "svg.durations, section[aria-labelledby=runs-h] table",
        ),
        ("/runs/1", "pre.output, p.empty"),
        ("/timeline", "svg.timeline"),
        ("/timeline?view=week", "table.heat"),
        ("/graph", "svg.graph"),
        ("/status", "section[aria-labelledby=active-h]"),
    ] {
        client.goto(&format!("{base}{page}")).await.unwrap();
        text_of(&client, ready).await;
        found.extend(
            axe(&client, &source)
                .await
                .into_iter()
                .map(|v| format!("{page} {v}")),
        );
    }
    assert!(
        found.is_empty(),
        "serious accessibility violations:\n{}",
        found.join("\n")
    );
    client.close().await.unwrap();
    daemon.stop();
}

/// Presses `key` (a WebDriver key code, e.g. Tab `\u{e004}`, Enter `\u{e007}`) wherever the
/// focus is.
async fn press(client: &Client, key: char) {
    use fantoccini::actions::{InputSource as _, KeyAction, KeyActions};
    let keys = KeyActions::new("keyboard".into())
        .then(KeyAction::Down { value: key })
        .then(KeyAction::Up { value: key });
    client.perform_actions(keys).await.unwrap();
}

const TAB: char = '\u{e004}';
const ENTER: char = '\u{e007}';

/// The focused element: what it is (`a /jobs/x`, `input param-version`, ...), its text, and
/// whether its focus is drawn (an outline of some width).
async fn focused(client: &Client) -> (String, String, bool) {
    let got = client
        .execute(
            "const e = document.activeElement; const s = getComputedStyle(e);
             return [`${e.tagName.toLowerCase()} ${e.getAttribute('href') || e.getAttribute('name') || e.id || ''}`,
                     (e.textContent || '').trim().slice(0, 60),
                     s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0];",
            vec![],
        )
        .await
        .unwrap();
    (
        got[0].as_str().unwrap_or_default().to_string(),
        got[1].as_str().unwrap_or_default().to_string(),
        got[2].as_bool().unwrap_or(false),
    )
}

/// Tabs on until the focus is on `want` (as [`focused`] names it), checking that every stop
/// on the way shows its focus; at most `stops` presses.
async fn tab_to(client: &Client, want: &str, stops: usize) {
    let mut seen = Vec::new();
    for _ in 0..stops {
        press(client, TAB).await;
        let (what, text, drawn) = focused(client).await;
        assert!(drawn, "`{what}` ({text:?}) has the focus but shows none");
        if what == want {
            return;
        }
        seen.push(what);
    }
    panic!("`{want}` never had the focus; the stops were {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keyboard_alone_logs_in_opens_a_job_and_triggers_it() {
    let p = project();
    let (daemon, base, _driver, client) = open(&p, true, 1280, 900).await;
    client.goto(&format!("{base}/")).await.unwrap();
    // The login page's token field has the focus: type, then Enter.
    text_of(&client, "#token").await;
    assert_eq!(focused(&client).await.0, "input token");
    for c in ADMIN.chars() {
        press(&client, c).await;
    }
    press(&client, ENTER).await;
    text_of(&client, "table.jobs tbody").await;
    // The new page has the focus on its content: the next stop is its first control.
    assert_eq!(focused(&client).await.0, "main main");

    // On a page loaded afresh the first Tab stop is the skip link, drawn when focused; Enter
    // goes to the content.
    client.refresh().await.unwrap();
    text_of(&client, "table.jobs tbody").await;
    press(&client, TAB).await;
    let (what, text, drawn) = focused(&client).await;
    assert_eq!(
        (what.as_str(), text.as_str(), drawn),
        ("a #main", "Skip to content", true)
    );
    press(&client, ENTER).await;
    assert_eq!(focused(&client).await.0, "main main");
    // From there: the filters, then the jobs, each stop showing its focus; Enter opens one.
    tab_to(&client, "input ", 1).await;
    tab_to(&client, "a /jobs/deploy", 10).await;
    press(&client, ENTER).await;
    text_of(&client, "form[aria-labelledby=trigger-h]").await;
    let url = client.current_url().await.unwrap();
    assert_eq!(url.path(), "/jobs/deploy");

    // The trigger form by keyboard: Tab to its required field, type, Enter submits.
    tab_to(&client, "input param-version", 30).await;
    for c in "v1.2.3".chars() {
        press(&client, c).await;
    }
    press(&client, ENTER).await;
    wait_text(&client, "pre.output", "v1.2.3").await;
    let url = client.current_url().await.unwrap();
    assert!(url.path().starts_with("/runs/"), "{url}");
    daemon.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_jobs_page_and_the_timeline_follow_runs_as_they_happen() {
    let p = project();
    let (daemon, base, _driver, client) = open(&p, true, 1280, 900).await;
    log_in(&client, &base, READER).await;
    text_of(&client, "table.jobs tbody").await;
    let row = "table.jobs tbody tr:has(a[href='/jobs/deploy'])";
    assert!(text_of(&client, row).await.contains("never ran"));
    // A run made elsewhere (the CLI, through the API) shows on the open page: its stream of
    // changes tells it, nothing is reloaded by hand.
    p.run(&[
        "trigger",
        "deploy",
        "--param",
        "version=7",
        "--wait",
        "--server",
        &base,
        "--token",
        ADMIN,
    ])
    .code(0);
    wait_text(&client, row, "succeeded").await;
    // And on the timeline, open before the next run: its bar appears.
    client.goto(&format!("{base}/timeline")).await.unwrap();
    text_of(&client, "svg.timeline").await;
    let bars = "svg.timeline a[href^='/runs/'] rect.s-succeeded";
    let before = client.find_all(Locator::Css(bars)).await.unwrap().len();
    assert_eq!(before, 1);
    p.run(&[
        "trigger",
        "deploy",
        "--param",
        "version=8",
        "--wait",
        "--server",
        &base,
        "--token",
        ADMIN,
    ])
    .code(0);
    let deadline = std::time::Instant::now() + WAIT;
    while client.find_all(Locator::Css(bars)).await.unwrap().len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the second run's bar never came"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    daemon.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scoped_token_sees_only_its_folders_jobs() {
    const CAROL: &str = "carol-team-a-0123456789abcdef";
    let p = Project::new()
        .file("jobs.d/team-a/report.yaml", "command: [echo, report]\n")
        .file("jobs.d/ops/deploy.yaml", "command: [echo, deploy]\n")
        .file("tokens", format!("read carol team-a/ {CAROL}\n"));
    let (daemon, base, _driver, client) = open(&p, true, 1280, 860).await;
    log_in(&client, &base, CAROL).await;
    assert_eq!(rows_settle_at(&client, "table.jobs tbody tr", 1).await, 1);
    let table = text_of(&client, "table.jobs tbody").await;
    assert!(
        table.contains("report") && !table.contains("deploy"),
        "{table}"
    );
    let who = text_of(&client, "header .who").await;
    assert!(who.contains("carol") && who.contains("team-a/"), "{who}");
    client.close().await.unwrap();
    daemon.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requests_run_page_shows_its_status() {
    // A local server answering 200 once per connection.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut request = [0u8; 2048];
            let _ = stream.read(&mut request);
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: close\r\n\r\nok\n",
            );
        }
    });
    let p = Project::new()
        .file(
            "jobs.d/probe.yaml",
            format!("http: {{url: 'http://127.0.0.1:{port}/health'}}\n"),
        )
        .file("tokens", format!("read bob {READER}\n"));
    p.run(&["apply"]).code(0);
    p.run(&["run", "probe"]).code(0);
    let (daemon, base, _driver, client) = open(&p, true, 1280, 860).await;
    log_in(&client, &base, READER).await;
    client.goto(&format!("{base}/runs/1")).await.unwrap();
    let facts = wait_text(&client, "dl.facts", "HTTP 200").await;
    assert!(!facts.contains("exit"), "{facts}");
    wait_text(&client, "pre.output", "HTTP/1.1 200 OK").await;
    // The job's runs list the status where a process's exit status would be.
    client.goto(&format!("{base}/jobs/probe")).await.unwrap();
    wait_text(&client, "section[aria-labelledby=runs-h] table", "HTTP 200").await;
    client.close().await.unwrap();
    daemon.stop();
}
