use std::time::Instant;

use cxone_uuid_client::rate::Rate;
use cxone_uuid_client::RateSpec;
use uuid::Uuid;

use super::*;

#[tokio::test]
async fn fixed_rate_paces_requests() {
    let server = mock(MockConfig::default()).await;
    let c = client(tutorial(&server).with_rate(RateSpec::Fixed(Rate::per_second(10.0))));
    let start = Instant::now();
    for _ in 0..6 {
        c.execute(Uuid::new_v4()).await.outcome.unwrap();
    }
    // 6 requests at 10/s with a burst of 1: at least 5 intervals of 100 ms
    assert!(
        start.elapsed() >= Duration::from_millis(450),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn auto_rate_adapts_to_a_rate_limited_server() {
    let server = mock(MockConfig {
        rate_limit: Some(40.0),
        ..Default::default()
    })
    .await;
    let c = client(
        tutorial(&server)
            .with_rate(RateSpec::Auto)
            .with_concurrency(8)
            .with_max_retries(5),
    );
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(8));
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let c = c.clone();
        let permit = sem.clone().acquire_owned().await.unwrap();
        tasks.push(tokio::spawn(async move {
            let r = c.execute(Uuid::new_v4()).await;
            drop(permit);
            r
        }));
    }
    let mut ok = 0;
    let mut limited = 0;
    for t in tasks {
        let r = t.await.unwrap();
        limited += r.rate_limited;
        if r.outcome.is_ok() {
            ok += 1;
        }
    }
    assert_eq!(ok, 200, "every UUID succeeds");
    assert!(c.rate_target().is_some(), "the limiter adapted");
    // unthrottled, 200 requests at a 40/s server would see most of them refused
    eprintln!("{limited} 429s, target {:?}", c.rate_target());
    assert!(limited < 40, "{limited} 429s");
}
