//! Managed Gateways: created when a SeldonDeployment names one that does not exist. Port
//! 80, plus 443 when the controller has a certificate Secret, on the ingress gateway pods.

use crate::istio::{Gateway, GatewaySpec, Server, ServerPort, ServerTls};
use crate::settings::Settings;

/// The Gateway `<namespace>/<name>` as the controller creates it.
pub fn render_gateway(namespace: &str, name: &str, settings: &Settings) -> Gateway {
    let mut servers = vec![Server {
        port: ServerPort {
            number: 80,
            name: "http".into(),
            protocol: "HTTP".into(),
        },
        hosts: vec!["*".into()],
        tls: None,
    }];
    if let Some(secret) = &settings.gateway_tls_secret {
        servers.push(Server {
            port: ServerPort {
                number: 443,
                name: "https".into(),
                protocol: "HTTPS".into(),
            },
            hosts: vec!["*".into()],
            tls: Some(ServerTls {
                mode: "SIMPLE".into(),
                credential_name: secret.clone(),
            }),
        });
    }
    Gateway {
        metadata: super::managed_metadata(namespace, name),
        spec: GatewaySpec {
            selector: settings.gateway_selector.clone(),
            servers,
        },
    }
}
