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
  cxone-uuid token --provider cxone --output json
  CXONE_ACCESS_KEY_ID=... CXONE_ACCESS_KEY_SECRET=... cxone-uuid token --provider cxone --cxone-auth access-key --area na1";

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
    let provider = config.provider_kind();
    let to_usage = |e| crate::settings::client_error(e, provider);
    config.validate_for_token().map_err(to_usage)?;
    let client = Client::new(config).map_err(to_usage)?;
    let info = match client.token_info().await {
        Ok(info) => info,
        Err(e) => {
            crate::exit::error(&e.to_string());
            return Ok(ExitCode::from(crate::exit::FAILURE));
        }
    };
    let expires: chrono::DateTime<chrono::Utc> = info.expires_at.into();
    let expires_in = info
        .expires_at
        .duration_since(std::time::SystemTime::now())
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let auth = match info.cxone_auth {
        // The access-key endpoint takes no client authentication: name the flow instead.
        Some(cxone_uuid_client::CxoneAuth::AccessKey) => "access-key".to_string(),
        _ => format!("{:?}", info.auth_method).to_lowercase(),
    };
    if args.output == "json" {
        let v = serde_json::json!({
            "provider": info.provider.as_str(),
            "token_endpoint": info.token_endpoint,
            "api_base": info.api_base,
            "auth_method": auth,
            "expires_at": expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "expires_in_s": expires_in,
            "scope": info.scope,
            "tenant_id": info.tenant_id,
            "area": info.area,
        });
        println!("{v}");
    } else {
        println!("authenticated: provider {}", info.provider.as_str());
        println!(
            "token endpoint: {} ({auth}{})",
            info.token_endpoint,
            if auth == "access-key" {
                " token endpoint"
            } else {
                " client authentication"
            }
        );
        println!(
            "api host:       {}",
            info.api_base.as_deref().unwrap_or("-")
        );
        println!(
            "expires:        {} (in {expires_in} s)",
            expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        );
        println!("scope:          {}", info.scope.as_deref().unwrap_or("-"));
        if let Some(t) = &info.tenant_id {
            println!(
                "tenant:         {t} (area {})",
                info.area.as_deref().unwrap_or("-")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
