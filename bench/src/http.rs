//! A minimal keep-alive HTTP/1.1 client over one connection: low overhead, so the figures
//! measure the server rather than the client.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
    host: String,
}

pub struct Reply {
    pub status: u16,
    pub body: Bytes,
}

impl Conn {
    pub async fn open(addr: &str) -> anyhow::Result<Conn> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn {
            sender,
            host: addr.to_string(),
        })
    }

    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Bytes,
    ) -> anyhow::Result<Reply> {
        let auth = key.map(|k| format!("Bearer {k}"));
        let mut headers = vec![("content-type", "application/json")];
        if let Some(a) = &auth {
            headers.push(("authorization", a.as_str()));
        }
        self.send_with(method, path, &headers, body).await
    }

    pub async fn send_with(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> anyhow::Result<Reply> {
        self.sender.ready().await?;
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", &self.host);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = self.sender.send_request(req.body(Full::new(body))?).await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok(Reply { status, body })
    }
}
