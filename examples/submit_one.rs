//! The library crates without the CLI: start the stand-in server, generate one UUID that the
//! health tests and a registry vouch for, submit it with retries, and print the outcome.
//!
//! Run with `cargo run -p cxone-uuid-cli --example submit_one`.

use std::sync::Arc;

use cxone_uuid_client::{Client, ClientConfig};
use cxone_uuid_core::{Generator, MemoryRegistry, UniqueGenerator, UuidVersion};
use cxone_uuid_mock::{MockConfig, MockServer};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mock = MockServer::start(MockConfig::default(), "127.0.0.1:0".parse()?).await?;
    let defaults = MockConfig::default();

    let registry = Arc::new(MemoryRegistry::new());
    let mut unique = UniqueGenerator::new(Generator::new(UuidVersion::V4), registry, 100);
    let uuid = unique.next_batch(1).await?.remove(0);

    let config = ClientConfig::builder()
        .with_client_id(defaults.client_id)
        .with_client_secret(defaults.client_secret)
        .with_action_id("example-action")
        .with_base_url(mock.base_url())
        .with_token_url(mock.token_url())
        .build();
    config.validate()?;
    let client = Client::new(config)?;
    let report = client.execute(uuid).await;
    match &report.outcome {
        Ok(outputs) => println!(
            "{uuid}: accepted after {} attempt(s): {outputs:?}",
            report.attempts
        ),
        Err(e) => println!("{uuid}: failed after {} attempt(s): {e}", report.attempts),
    }
    mock.shutdown().await;
    Ok(())
}
