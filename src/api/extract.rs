//! Extractors whose rejections are problem documents instead of axum's plain text.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::limits::{self, UNKNOWN_CLIENT};
use super::AppState;
use crate::auth::Caller;

/// `axum::Json` with problem+json rejections (`invalid_json`, `invalid_body`, 413, 415).
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<T>::from_request(req, state).await?;
        Ok(Json(value))
    }
}

/// A single path segment with problem+json rejections.
pub struct PathParam(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathParam {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(value) =
            axum::extract::Path::<String>::from_request_parts(parts, state).await?;
        Ok(PathParam(value))
    }
}

/// The client as the per-client limits count it: its address as the listener recorded
/// it, an IPv6 one cut to its /64 ([`limits::client_of`]); [`UNKNOWN_CLIENT`] when the
/// router runs without a listener.
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let address = parts.extensions.get::<ConnectInfo<SocketAddr>>();
        Ok(ClientIp(address.map_or(UNKNOWN_CLIENT, |info| {
            limits::client_of(info.0.ip())
        })))
    }
}

/// Who is asking, as access control found it; [`Caller::Unchecked`] when it is off. A
/// handler on a route access control let through unchecked (an open one) gets a 401
/// rather than free rein.
impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match parts.extensions.get::<Caller>() {
            Some(caller) => Ok(caller.clone()),
            None if !state.auth.enabled() => Ok(Caller::Unchecked),
            None => Err(ApiError::unauthorized(
                "unauthenticated",
                "this request needs a token",
                super::error::CHALLENGE,
            )),
        }
    }
}
