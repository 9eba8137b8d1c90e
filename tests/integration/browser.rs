//! The dashboard in a real headless browser: Debian's Chromium driven over
//! WebDriver (chromedriver, with fantoccini) against the real daemon. `.ci/run`
//! installs both (`apt-get install chromium chromium-driver`); without them these
//! tests fail saying so.
//!
//! The page is loaded once per test and never reloaded: what changes (a restart,
//! a dead letter) must reach it live, over `/events` and the API.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use serde_json::{json, Value};

use crate::common::{free_port, wait_until_blocking, Daemon, Sandbox};

const T: Duration = Duration::from_secs(30);

/// A chromedriver on a port of its own, killed on drop.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chromedriver() -> Driver {
    let bin = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect(
            "the browser tests need Chromium and ChromeDriver: \
             apt-get install chromium chromium-driver (.ci/run installs them)",
        );
    let port = free_port();
    let child = Command::new(bin)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    wait_until_blocking("chromedriver listens", T, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    Driver { child, port }
}

/// A headless Chromium session, in a profile of its own under `profile`.
async fn browser(driver: &Driver, profile: &Path) -> Client {
    // Debian's /usr/bin/chromium is a wrapper script; the binary itself is here
    let binary = ["/usr/lib/chromium/chromium", "/usr/bin/chromium"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("Chromium is installed (apt-get install chromium)");
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": binary,
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1400,1000",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    ClientBuilder::rustls()
        .expect("a WebDriver client")
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", driver.port))
        .await
        .expect("a Chromium session")
}

/// Evaluates `expr` in the page until it is truthy; returns its value.
async fn until(b: &Client, what: &str, expr: &str, timeout: Duration) -> Value {
    let end = Instant::now() + timeout;
    loop {
        let v = b
            .execute(&format!("return ({expr});"), vec![])
            .await
            .unwrap_or(Value::Null);
        if !matches!(v, Value::Null | Value::Bool(false)) && v != json!(0) && v != json!("") {
            return v;
        }
        if Instant::now() > end {
            let status = b
                .execute("return document.body.innerText;", vec![])
                .await
                .unwrap_or_default();
            panic!("{what}: not within {timeout:?}; the page says:\n{status}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Saves a screenshot of the page as `target/NAME` and ends the session.
async fn screenshot_and_close(b: Client, name: &str) {
    let png = b.screenshot().await.unwrap();
    std::fs::write(screenshot_path(name), png).unwrap();
    b.close().await.unwrap();
}

fn screenshot_path(name: &str) -> PathBuf {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// The shipped default config, its dashboard on a free port, in the sandbox.
fn default_tree(port: u16) -> String {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/warden.toml"))
        .unwrap();
    assert!(
        text.contains("metrics_listen = \"127.0.0.1:9464\""),
        "the default config serves the dashboard"
    );
    text.replace("127.0.0.1:9464", &format!("127.0.0.1:{port}"))
        .replace("\"var/warden\"", "\"{dir}/data\"")
        .replace("\"var/out.jsonl\"", "\"{dir}/out.jsonl\"")
}

fn token(sb: &Sandbox, d: &Daemon) -> String {
    d.wait_for_log("dashboard at http://", T);
    std::fs::read_to_string(sb.path("data/dashboard.token"))
        .unwrap()
        .trim()
        .to_string()
}

fn cell(agent: &str, column: &str) -> String {
    format!("(document.querySelector('#tree tr[data-name=\"{agent}\"] td.{column}') || {{}}).textContent")
}

#[test]
fn the_dashboard_shows_the_tree_and_follows_restarts_and_dead_letters_live() {
    let port = free_port();
    let sb = Sandbox::new(&default_tree(port));
    let d = sb.start_ready();
    let token = token(&sb, &d);
    let driver = chromedriver();
    let profile = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let b = browser(&driver, profile.path()).await;
        let base = format!("http://127.0.0.1:{port}/");
        // without the token: the page loads, the API refuses, and the page says why
        b.goto(&base).await.unwrap();
        until(
            &b,
            "the page names the missing token",
            "document.getElementById('status').textContent.includes('token')",
            T,
        )
        .await;
        let status = b
            .execute_async(
                "const done = arguments[0]; fetch('/api/tree').then(r => done(r.status));",
                vec![],
            )
            .await
            .unwrap();
        assert_eq!(status, json!(401), "the API without the token");

        b.goto(&format!("{base}#token={token}")).await.unwrap();
        // a new document (only the fragment changed): load it for real
        b.refresh().await.unwrap();
        until(
            &b,
            "the page is live",
            "document.getElementById('status').textContent === 'live'",
            T,
        )
        .await;
        for name in [
            "root", "intake", "pipeline", "planner", "workers", "reviewer", "out",
        ] {
            until(
                &b,
                &format!("{name} in the tree"),
                &format!("document.querySelector('#tree tr[data-name=\"{name}\"]')"),
                T,
            )
            .await;
        }
        assert_eq!(
            until(&b, "planner's restarts", &cell("planner", "restarts"), T).await,
            json!("0")
        );
        // from here on the page is never reloaded: a marker in its window survives
        b.execute("window.sameDocument = 42; return 0;", vec![])
            .await
            .unwrap();

        let out = sb.ctl(&["kill", "planner"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        until(
            &b,
            "planner's restart count goes up",
            &format!("{} === '1'", cell("planner", "restarts")),
            T,
        )
        .await;
        until(
            &b,
            "the restart in the event list",
            "document.getElementById('events').textContent.includes('restarted planner')",
            T,
        )
        .await;

        let out = sb.ctl(&["send", "planner", r#"{"fault":"error"}"#]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        until(
            &b,
            "the dead letter listed",
            "document.querySelector('#dlq tr[data-message]')",
            T,
        )
        .await;
        let row = b
            .execute(
                "return document.querySelector('#dlq tr[data-message]').textContent;",
                vec![],
            )
            .await
            .unwrap();
        let row = row.as_str().unwrap();
        assert!(
            row.contains("planner:")
                && row.contains("max_attempts")
                && row.contains("fault directive: error"),
            "the dead letter with its reason and last error: {row}"
        );
        until(
            &b,
            "planner's dead count",
            &format!("{} === '1'", cell("planner", "dead")),
            T,
        )
        .await;
        assert_eq!(
            b.execute("return window.sameDocument;", vec![])
                .await
                .unwrap(),
            json!(42),
            "all of it without a reload"
        );
        screenshot_and_close(b, "dashboard.png").await;
    });
}

/// A tree of 1,000 agents (10 supervisors of 100): the page shows every one and
/// keeps up with messages to all of them. Prints the page's weight and the time
/// to its first full render (measured, not asserted).
#[test]
fn the_dashboard_renders_a_thousand_agents() {
    let port = free_port();
    let mut config = format!(
        "[daemon]\ndata_dir = \"{{dir}}/data\"\n\n[telemetry]\nmetrics_listen = \"127.0.0.1:{port}\"\n\n\
         [supervisor.root]\nchildren = [{}]\n",
        (0..10).map(|s| format!("\"team{s}\"")).collect::<Vec<_>>().join(", ")
    );
    for s in 0..10 {
        let kids: Vec<String> = (0..100).map(|a| format!("\"a{s}_{a}\"")).collect();
        config.push_str(&format!(
            "\n[supervisor.team{s}]\nchildren = [{}]\n",
            kids.join(", ")
        ));
        for a in 0..100 {
            config.push_str(&format!(
                "\n[agent.a{s}_{a}]\nkind = \"echo\"\nmailbox = \"memory\"\n"
            ));
        }
    }
    let sb = Sandbox::new(&config);
    let d = sb.start_ready();
    let token = token(&sb, &d);
    let driver = chromedriver();
    let profile = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let b = browser(&driver, profile.path()).await;
        b.goto(&format!("http://127.0.0.1:{port}/#token={token}"))
            .await
            .unwrap();
        let rows = until(
            &b,
            "every agent and supervisor in the tree",
            "document.querySelectorAll('#tree tr[data-name]').length === 1011 && window.wardenRendered",
            T,
        )
        .await;
        assert!(rows.is_number());
        let figures = b
            .execute(
                "const nav = performance.getEntriesByType('navigation')[0];
                 const api = performance.getEntriesByType('resource')
                     .filter(r => r.name.includes('/api/'));
                 return {
                   rendered_ms: window.wardenRendered,
                   page_bytes: nav.transferSize, page_body_bytes: nav.decodedBodySize,
                   api_bytes: api.reduce((n, r) => n + r.transferSize, 0),
                   rows: document.querySelectorAll('#tree tr[data-name]').length,
                 };",
                vec![],
            )
            .await
            .unwrap();
        println!("dashboard with 1,000 agents: {figures}");
        // how long the main thread is busy at a time while it keeps up (printed)
        b.execute(
            "window.longest = 0; new PerformanceObserver(l => l.getEntries().forEach(e =>
                 window.longest = Math.max(window.longest, e.duration)))
               .observe({type: 'longtask'}); return 0;",
            vec![],
        )
        .await
        .unwrap();
        // a message to every agent: the handled counts move, the page keeps up
        let mut c = sb.conn();
        for s in 0..10 {
            for a in 0..100 {
                let r = c.req(json!({"op": "send", "to": format!("a{s}_{a}"), "payload": {}}));
                assert_eq!(r["ok"], true, "{r}");
            }
        }
        // the last agent's sparkline rises off its floor (a point above y = 14)
        until(
            &b,
            "the last agent's handled/s drawn",
            "[...document.querySelectorAll('#tree tr[data-name=\"a9_99\"] polyline')]
                .some(l => l.getAttribute('points').split(' ')
                    .some(p => parseFloat(p.split(',')[1]) < 14))",
            T,
        )
        .await;
        let longest = b.execute("return window.longest;", vec![]).await.unwrap();
        println!("dashboard with 1,000 agents: longest main-thread task while updating: {longest} ms");
        screenshot_and_close(b, "dashboard-1000.png").await;
    });
}

/// Spend on the page: an agent's tokens, and a limiter whose daily budget is
/// spent, saying when it resumes.
#[test]
fn the_dashboard_shows_spend_and_a_spent_daily_budget() {
    let port = free_port();
    let sb = Sandbox::new(&format!(
        "{}limits = [\"daily\"]\n\n[limits.daily]\ntokens_per_day = 500\n\n[telemetry]\nmetrics_listen = \"127.0.0.1:{port}\"\n",
        crate::ports::config("")
    ));
    let d = sb.start_ready();
    let token = token(&sb, &d);
    let r = sb.conn().req(json!({"op": "call", "to": "worker",
        "payload": {"usage": {"model": "m", "input_tokens": 400, "output_tokens": 200}}}));
    assert_eq!(r["ok"], true, "{r}");
    let driver = chromedriver();
    let profile = tempfile::tempdir().unwrap();
    runtime().block_on(async {
        let b = browser(&driver, profile.path()).await;
        b.goto(&format!("http://127.0.0.1:{port}/#token={token}"))
            .await
            .unwrap();
        until(&b, "the worker's spend", &format!("{} === '600'", cell("worker", "spend")), T).await;
        let today = until(
            &b,
            "the limiter's day",
            "(document.querySelector('#limits tr[data-limiter=\"daily\"] td.today') || {}).textContent",
            T,
        )
        .await;
        let today = today.as_str().unwrap();
        assert!(
            today.contains("600 / 500") && today.contains("spent; resumes in"),
            "{today}"
        );
        screenshot_and_close(b, "dashboard-spend.png").await;
    });
}
