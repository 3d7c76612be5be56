//! A raw HTTP client logged in as one test user: any method, headers and body, and the reply's
//! status, headers and text. Test files add their own helpers in `impl Client` blocks.

#![allow(dead_code)]

use reqwest::{Method, StatusCode};

use super::{TestServer, PASSWORD};

pub struct Client {
    http: reqwest::Client,
    base: String,
    pub user: &'static str,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Client {
    pub fn new(server: &TestServer, user: &'static str) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: server.url(""),
            user,
        }
    }

    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Reply {
        let mut req = self
            .http
            .request(
                Method::from_bytes(method.as_bytes()).unwrap(),
                format!("{}{}", self.base, path),
            )
            .basic_auth(self.user, Some(PASSWORD))
            .body(body.to_owned());
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let response = req.send().await.expect("request");
        Reply {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.text().await.unwrap_or_default(),
        }
    }
}
