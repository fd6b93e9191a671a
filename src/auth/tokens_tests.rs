//! The token registry: creation within the creator's reach, checks, revocation, expiry,
//! the bootstrap file.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::store::RedbStore;

fn request(role: Role, namespaces: &[&str]) -> TokenRequest {
    TokenRequest {
        name: "t".into(),
        role,
        namespaces: namespaces.iter().map(|n| n.to_string()).collect(),
        expires_in: None,
    }
}

fn tokens(dir: &Path) -> Tokens {
    Tokens::load(Arc::new(RedbStore::open(dir).unwrap())).unwrap()
}

#[tokio::test]
async fn a_created_token_authenticates_survives_a_restart_and_stops_when_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let secret = {
        let tokens = tokens(dir.path());
        let (token, secret) = tokens
            .create(request(Role::Read, &["prod"]), None)
            .await
            .unwrap();
        assert_eq!(tokens.authenticate(&secret).unwrap().id, token.id);
        secret
    };
    let tokens = tokens(dir.path());
    let token = tokens.authenticate(&secret).unwrap();
    assert_eq!(
        (token.role, token.scope.patterns()),
        (Role::Read, &["prod".to_owned()][..])
    );
    let waiting = tokio::spawn({
        let token = token.clone();
        let tokens = Arc::new(tokens);
        let revoker = tokens.clone();
        async move {
            let revoke = async {
                revoker.revoke(&token.id).await.unwrap();
            };
            tokio::join!(tokens.invalidated(&token), revoke);
            tokens.authenticate(&secret)
        }
    });
    let after = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("revocation ends the wait")
        .unwrap();
    assert_eq!(after.unwrap_err(), Denied::Invalid);
}

#[tokio::test]
async fn wrong_secrets_are_refused_alike() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = tokens(dir.path());
    let (token, secret) = tokens
        .create(request(Role::Admin, &["*"]), None)
        .await
        .unwrap();
    let forged = format!("sb_{}_{}", token.id, "0".repeat(64));
    assert_ne!(forged, secret);
    for bad in [forged.as_str(), "nonsense", ""] {
        assert_eq!(
            tokens.authenticate(bad).unwrap_err(),
            Denied::Invalid,
            "{bad}"
        );
    }
}

#[tokio::test]
async fn an_expired_token_is_refused_and_its_waiters_end() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = tokens(dir.path());
    let mut asked = request(Role::Read, &["*"]);
    asked.expires_in = Some("1s".into());
    let (token, secret) = tokens.create(asked, None).await.unwrap();
    assert!(tokens.authenticate(&secret).is_ok());
    tokio::time::timeout(Duration::from_secs(5), tokens.invalidated(&token))
        .await
        .expect("expiry ends the wait");
    assert_eq!(tokens.authenticate(&secret).unwrap_err(), Denied::Expired);
}

#[tokio::test]
async fn a_token_cannot_create_one_reaching_beyond_it() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = tokens(dir.path());
    let (team, _) = tokens
        .create(request(Role::Admin, &["team-*"]), None)
        .await
        .unwrap();
    let (operator, _) = tokens
        .create(request(Role::Operate, &["*"]), None)
        .await
        .unwrap();
    for (by, asked) in [
        (&team, request(Role::Read, &["*"])),
        (&team, request(Role::Read, &["team-a", "prod"])),
        (&operator, request(Role::Admin, &["*"])),
    ] {
        assert!(matches!(
            tokens.create(asked, Some(by)).await,
            Err(TokenError::Beyond(_))
        ));
    }
    let (made, _) = tokens
        .create(request(Role::Register, &["team-a"]), Some(&team))
        .await
        .unwrap();
    assert_eq!(made.created_by.as_deref(), Some(team.id.as_str()));
}

#[tokio::test]
async fn bad_requests_name_their_field() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = tokens(dir.path());
    let mut blank = request(Role::Read, &["*"]);
    blank.name = " ".into();
    let mut forever = request(Role::Read, &["*"]);
    forever.expires_in = Some("soon".into());
    for (asked, field) in [
        (blank, "name"),
        (request(Role::Read, &[]), "namespaces"),
        (request(Role::Read, &["a/b"]), "namespaces[0]"),
        (forever, "expires_in"),
    ] {
        match tokens.create(asked, None).await {
            Err(TokenError::Invalid { field: named, .. }) => assert_eq!(named, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    assert!(tokens.is_empty(), "nothing was stored");
}

#[cfg(unix)]
#[tokio::test]
async fn the_first_start_with_auth_on_writes_the_admin_secret_owner_only_once() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let config = AuthConfig {
        enabled: true,
        ..AuthConfig::default()
    };
    let store: Arc<RedbStore> = Arc::new(RedbStore::open(dir.path()).unwrap());
    let auth = Auth::start(config.clone(), store.clone(), dir.path())
        .await
        .unwrap();
    let file = dir.path().join(BOOTSTRAP_FILE);
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let secret = std::fs::read_to_string(&file).unwrap();
    let admin = auth.tokens.authenticate(secret.trim()).unwrap();
    assert_eq!(
        (admin.role, admin.scope.is_everything()),
        (Role::Admin, true)
    );
    std::fs::remove_file(&file).unwrap();
    let again = Auth::start(config, store, dir.path()).await.unwrap();
    assert_eq!(again.tokens.list().len(), 1);
    assert!(!file.exists(), "no second bootstrap while a token exists");
}
