//! `cxone-uuid token`: the first thing to run when setting up credentials.
//!
//! It performs exactly the authentication `run` would (including CXone discovery) and prints who
//! and where it authenticated, never the token itself.

use std::process::ExitCode;

use cxone_uuid_client::Client;

use crate::config::{ConnectArgs, TransportArgs};

const AFTER_HELP: &str = "\
Examples:
  CXONE_CLIENT_ID=... CXONE_CLIENT_SECRET=... CXONE_DATA_ACTION_ID=... cxone-uuid token
  cxone-uuid token --provider genesys --region mypurecloud.ie
  cxone-uuid token --provider cxone --output json";

/// Arguments of `token`.
#[derive(clap::Args, Debug)]
#[command(after_help = AFTER_HELP)]
pub(crate) struct Args {
    #[command(flatten)]
    connect: ConnectArgs,

    #[command(flatten)]
    transport: TransportArgs,

    /// Output format: text or json.
    #[arg(long, default_value = "text")]
    output: String,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = crate::config::client_config(&args.connect, &args.transport)?;
    let client = Client::new(config).map_err(|e| {
        if e.is_config() {
            crate::exit::usage(e.to_string())
        } else {
            anyhow::Error::new(e)
        }
    })?;
    let info = match client.token_info().await {
        Ok(info) => info,
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(ExitCode::from(crate::exit::FAILURE));
        }
    };
    if args.output == "json" {
        println!("{}", serde_json::to_string(&info)?);
    } else {
        println!("{info}");
    }
    Ok(ExitCode::SUCCESS)
}
