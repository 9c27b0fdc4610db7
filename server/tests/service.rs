//! The server with its own Rust client over loopback: answers bit-identical to the engine run directly, a
//! load of 64 concurrent clients without a failure, dynamic batching, back-pressure, deadlines, keys and
//! their rotation, and graceful shutdown.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use server::keys::{Keys, Which};
use server::BatchConfig;
use tonic::Code;

/// GET `path` over plain HTTP/1.1 and returns the status line and the body.
fn http_get(addr: std::net::SocketAddr, path: &str) -> (String, String) {
    let mut stream = std::net::TcpStream::connect(addr).expect("connects");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (head.lines().next().unwrap_or("").to_string(), body.to_string())
}

/// The value of a Prometheus sample line `name` (labels included in `name`), summed over matching lines.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_the_engine_run_directly_to_the_bit() {
    let Some(data) = common::data_dir() else { return };
    let service = common::resnet20_service(&data);
    let images = common::cifar_pngs(&data, 4);
    let expected: Vec<Vec<f32>> = images.iter().map(|(png, _)| common::expected_probabilities(&service, png)).collect();
    let server = common::start(common::config(service)).await;
    let mut client = common::client(&server, None).await;
    // The C# client's way: all images in one request.
    let all = client.predict(images.iter().map(|(png, _)| png.clone()).collect()).await.expect("a batch request");
    assert_eq!(all.probabilities, expected);
    // The Python client's way: one image per request.
    for ((png, _), want) in images.iter().zip(&expected) {
        let one = client.predict(vec![png.clone()]).await.expect("a request");
        assert_eq!(&one.probabilities[0], want);
        assert!(one.engine_time.is_some_and(|t| t > Duration::ZERO), "the engine time header is set");
    }
    let correct = images.iter().zip(&expected).filter(|((_, label), p)| common::argmax(p) == *label).count();
    eprintln!("{correct} of {} real CIFAR-10 images classified correctly through the server", images.len());
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_concurrent_clients_get_every_answer_right_and_requests_are_batched() {
    let Some(data) = common::data_dir() else { return };
    let service = common::resnet20_service(&data);
    let images = common::cifar_pngs(&data, 8);
    let expected: Vec<Vec<f32>> = images.iter().map(|(png, _)| common::expected_probabilities(&service, png)).collect();
    let mut config = common::config(service);
    config.batching = BatchConfig { max_batch: 8, max_delay: Duration::from_millis(5), queue_capacity: 128 };
    let server = common::start(config).await;
    let seconds: f64 = std::env::var("SYSTOLE_LOAD_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for c in 0..64 {
        let mut client = common::client(&server, None).await;
        let (images, expected) = (images.clone(), expected.clone());
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut failures) = (0usize, Vec::new());
            let mut i = c;
            // Every client sends at least one request, then keeps going until the time is up.
            while ok + failures.len() == 0 || Instant::now() < until {
                let k = i % images.len();
                match client.predict(vec![images[k].0.clone()]).await {
                    Ok(p) if p.probabilities == [expected[k].clone()] => ok += 1,
                    Ok(_) => failures.push(format!("client {c}: image {k}: wrong probabilities")),
                    Err(s) => failures.push(format!("client {c}: image {k}: {:?} {}", s.code(), s.message())),
                }
                i += 1;
            }
            (ok, failures)
        }));
    }
    let (mut ok, mut failures) = (0, Vec::new());
    for t in tasks {
        let (o, f) = t.await.expect("a client task");
        ok += o;
        failures.extend(f);
    }
    assert!(failures.is_empty(), "{} failed requests, e.g. {:?}", failures.len(), &failures[..failures.len().min(5)]);
    let (status, metrics) = http_get(server.local_addr(), "/metrics");
    assert!(status.contains("200"), "{status}");
    let batches = metric(&metrics, "systole_batch_size_images_count");
    let batched_images = metric(&metrics, "systole_batch_size_images_sum");
    eprintln!(
        "{ok} requests from 64 clients in {seconds} s, no failure; {batches} batches, {:.2} images per batch",
        batched_images / batches
    );
    assert_eq!(batched_images as usize, ok, "every image ran in exactly one batch");
    assert!(
        batched_images / batches > 1.5,
        "64 waiting clients are batched: {batched_images} images in {batches} batches"
    );
    assert_eq!(metric(&metrics, "systole_requests_total{code=\"OK\",protocol=\"tfserving\"}") as usize, ok);
    assert_eq!(metric(&metrics, "systole_queue_depth{model=\"resnet20-cifar10\"}"), 0.0);
    assert!(metric(&metrics, "systole_engine_busy_seconds_total{model=\"resnet20-cifar10\"}") > 0.0);
    assert!(metric(&metrics, "systole_engine_cycles_total{model=\"resnet20-cifar10\"}") > 0.0);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_refuses_with_resource_exhausted_and_expired_deadlines_are_not_run() {
    let Some(data) = common::data_dir() else { return };
    let service = common::resnet20_service(&data);
    let png = common::cifar_pngs(&data, 1).remove(0).0;
    let mut config = common::config(service);
    config.batching = BatchConfig { max_batch: 1, max_delay: Duration::ZERO, queue_capacity: 2 };
    let server = common::start(config).await;
    let client = common::client(&server, None).await;
    let burst: Vec<_> = (0..24)
        .map(|_| {
            let (mut client, png) = (client.clone(), png.clone());
            tokio::spawn(async move { client.predict(vec![png]).await.map(|_| ()).map_err(|s| s.code()) })
        })
        .collect();
    let mut codes = Vec::new();
    for t in burst {
        codes.push(t.await.unwrap().err().unwrap_or(Code::Ok));
    }
    let full = codes.iter().filter(|&&c| c == Code::ResourceExhausted).count();
    let ok = codes.iter().filter(|&&c| c == Code::Ok).count();
    assert_eq!(full + ok, codes.len(), "only OK or RESOURCE_EXHAUSTED: {codes:?}");
    assert!(full > 0 && ok > 0, "a queue of 2 refuses some of 24 concurrent requests and serves others: {codes:?}");

    // A deadline shorter than one image's run: the server answers DEADLINE_EXCEEDED when it passes and never
    // runs the request. (The client enforces the same deadline, so it may see its own CANCELLED first; the
    // server's answer is read from its metrics.)
    let addr = server.local_addr();
    let scrape =
        move || async move { tokio::task::spawn_blocking(move || http_get(addr, "/metrics").1).await.unwrap() };
    let images_before = metric(&scrape().await, "systole_images_total");
    let mut hurried = client.clone();
    hurried.set_timeout(Some(Duration::from_micros(200)));
    let status = hurried.predict(vec![png.clone()]).await.expect_err("too short a deadline");
    assert!(matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled), "{status:?}");
    let expired = "systole_requests_total{code=\"DEADLINE_EXCEEDED\",protocol=\"tfserving\"}";
    let give_up = Instant::now() + Duration::from_secs(5);
    while metric(&scrape().await, expired) < 1.0 {
        assert!(Instant::now() < give_up, "the server never answered DEADLINE_EXCEEDED");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // And the server keeps serving, without having run the expired request.
    let mut patient = client.clone();
    patient.set_timeout(Some(Duration::from_secs(60)));
    patient.predict(vec![png]).await.expect("a request after the refusals");
    assert_eq!(metric(&scrape().await, "systole_images_total"), images_before + 1.0, "the expired request never ran");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn either_key_is_accepted_and_keys_rotate_without_a_restart() {
    let Some(data) = common::data_dir() else { return };
    let service = common::resnet20_service(&data);
    let png = common::cifar_pngs(&data, 1).remove(0).0;
    let dir = tempfile::tempdir().unwrap();
    let keys_file = dir.path().join("keys.txt");
    let keys = Keys::generate();
    keys.write(&keys_file).unwrap();
    let mut config = common::config(service);
    config.keys = Some(keys_file.clone());
    let server = common::start(config).await;
    let client = common::client(&server, Some(&keys.primary)).await;
    let attempt = |key: Option<String>| {
        let (mut client, png) = (client.clone(), png.clone());
        async move {
            client.set_key(key.as_deref()).unwrap();
            client.predict(vec![png]).await.map(|_| ())
        }
    };
    attempt(Some(keys.primary.clone())).await.expect("the primary key");
    attempt(Some(format!("Bearer {}", keys.secondary))).await.expect("the secondary key as a bearer token");
    for (what, key) in [("wrong", Some("0".repeat(64))), ("missing", None)] {
        let status = attempt(key).await.expect_err(what);
        assert_eq!(status.code(), Code::Unauthenticated, "{what} key: {status:?}");
        let id = status.metadata().get("request_id").expect("every error carries a request_id");
        assert_eq!(id.len(), 16, "{what} key: {id:?}");
    }

    // Rotation: the primary is replaced; the old one stops working and the new one works, within a second
    // and without a restart, while the secondary keeps working throughout.
    let rotated = keys.regenerate(Which::Primary);
    rotated.write(&keys_file).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while attempt(Some(keys.primary.clone())).await.is_ok() {
        assert!(Instant::now() < deadline, "the old primary key still works 5 s after rotation");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    attempt(Some(rotated.primary.clone())).await.expect("the new primary key");
    attempt(Some(keys.secondary.clone())).await.expect("the secondary key, untouched by the rotation");
    // A damaged keys file is not taken: the keys in force stay.
    std::fs::write(&keys_file, "half a key").unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    attempt(Some(rotated.primary.clone())).await.expect("the keys in force survive a bad keys file");
    // Health and metrics need no key (probes and scrapers have none); inference over REST does.
    let addr = server.local_addr();
    let (live, ready) =
        tokio::task::spawn_blocking(move || (http_get(addr, "/v2/health/live"), http_get(addr, "/v2/health/ready")))
            .await
            .unwrap();
    assert!(live.0.contains("200") && ready.0.contains("200"), "{live:?} {ready:?}");
    let model = tokio::task::spawn_blocking(move || http_get(addr, "/v2/models/resnet20-cifar10")).await.unwrap();
    assert!(model.0.contains("401") && model.1.contains("error"), "{model:?}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_finishes_the_requests_in_flight() {
    let Some(data) = common::data_dir() else { return };
    let service = common::resnet20_service(&data);
    let png = common::cifar_pngs(&data, 1).remove(0).0;
    let mut config = common::config(service);
    config.batching = BatchConfig { max_batch: 1, max_delay: Duration::ZERO, queue_capacity: 64 };
    let server = common::start(config).await;
    let addr = server.local_addr();
    let client = common::client(&server, None).await;
    let in_flight: Vec<_> = (0..6)
        .map(|_| {
            let (mut client, png) = (client.clone(), png.clone());
            tokio::spawn(async move { client.predict(vec![png]).await.map(|_| ()) })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(30)).await;
    server.shutdown().await;
    for t in in_flight {
        t.await.unwrap().expect("a request in flight when shutdown began completes");
    }
    assert!(std::net::TcpStream::connect(addr).is_err(), "no connection is taken after shutdown");
}
