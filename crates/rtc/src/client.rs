//! The entry point: an `RtcClient` holds what every peer connection shares.
use crate::config::RtcConfig;
use crate::peer::PeerConnection;
use crate::Result;

/// Makes peer connections that share one configuration.
#[derive(Debug, Clone)]
pub struct RtcClient {
    config: RtcConfig,
}

impl RtcClient {
    pub fn new(config: RtcConfig) -> Self {
        RtcClient { config }
    }

    pub fn config(&self) -> &RtcConfig {
        &self.config
    }

    /// A new, idle peer connection.
    pub async fn create_peer_connection(&self) -> Result<PeerConnection> {
        PeerConnection::new(&self.config).await
    }
}
