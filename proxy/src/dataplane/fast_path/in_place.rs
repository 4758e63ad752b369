//! The fast path for a request read in place (`client_request`): the
//! common exchange with no Pingora session on the client's side. The
//! request is routed on the bytes the connection loop read, its head
//! written upstream from them, the common answer read in place
//! (`upstream_answer`) and written by `fast_answer`, and the connection
//! handed back for its next request.
//!
//! Anything less common falls back to the session path at the point it is
//! met, with the same bytes: a request that is not read in place, or is
//! routed where the fast path does not serve, goes back to the connection
//! loop unread; an upstream failure, or an answer given back to Pingora's
//! client session, gets a client session made from the request's bytes
//! (Pingora reads them again, with no read from the connection: the head
//! is whole and there is no body), and the exchange ends as on the session
//! path ([`FastPath::conclude`]), with the same error answers.
//!
//! The connection's next session is made as on a new connection. That is
//! the same as carrying this one's keep-alive settings because Pingora
//! sets a session's keep-alive from its request, and no request limit is
//! set for a connection (`keepalive_request_limit`, which the connection
//! loop checks before it reads in place).

use std::net::{IpAddr, SocketAddr};

use bytes::BytesMut;
use pingora::protocols::Stream;
use pingora::protocols::http::ServerSession;
use pingora::protocols::http::v1::client::HttpSession as UpstreamSession;
use pingora::server::ShutdownWatch;
use pingora::{Result, RetryType};

use super::{
    AnswerFrom, Answering, Attempt, FastPath, NextRequest, ServedInPlace, upstream_head,
    upstream_session, write_all,
};
use crate::dataplane::client_request::InPlaceRequest;
use crate::dataplane::ctx::RequestCtx;
use crate::dataplane::exchange::{DataPath, Routing};
use crate::dataplane::fast_answer::{OwnedAnswer, probe_idle};
use crate::dataplane::kept_timer::KeptTimer;
use crate::dataplane::service::MAX_CONNECT_ATTEMPTS;
use crate::dataplane::upstream_answer::{HeadRead, InPlaceAnswer, read_head};

/// What sending a request read in place upstream gave.
enum Sent {
    /// The common answer, read in place.
    Answer(InPlaceAnswer, SocketAddr),
    /// An answer given back to Pingora's client session.
    Elsewhere(Box<UpstreamSession>, SocketAddr),
}

impl FastPath {
    /// Serves the request whose head `bytes` holds (read by the connection
    /// loop) if it is read in place and routed to the fast path; gives the
    /// connection and the bytes back otherwise. The answer is awaited on
    /// the client connection's kept `timer`.
    pub async fn serve_in_place(
        &self,
        mut stream: Stream,
        bytes: BytesMut,
        shutdown: &ShutdownWatch,
        timer: &mut KeptTimer,
    ) -> ServedInPlace {
        let request = match InPlaceRequest::read(bytes) {
            Ok(request) => request,
            Err(bytes) => return ServedInPlace::NotInPlace(stream, bytes),
        };
        let peer = peer_ip(&stream);
        let tls = stream.get_ssl_digest().is_some();
        let mut ctx = RequestCtx::new(self.proxy.live.current());
        match self
            .proxy
            .route(&request.view(peer), &mut ctx, DataPath::Fast)
        {
            Routing::Forward => {}
            Routing::Refuse(..) | Routing::NotFast => {
                return ServedInPlace::ToEngine(stream, request.into_bytes());
            }
        }
        self.served.inc();
        let sent = self.send(&mut stream, &request, tls, &mut ctx, timer).await;
        let forwarded = match sent {
            Ok(Sent::Answer(answer, addr)) => {
                let next = self
                    .answer_in_place(stream, &request, answer, addr, ctx, shutdown)
                    .await
                    .map(|next| NextRequest {
                        carried: spare_buffer(request.into_bytes()),
                        ..next
                    });
                return ServedInPlace::Answered(next);
            }
            Ok(Sent::Elsewhere(upstream, addr)) => Ok((upstream, addr)),
            Err(e) => Err(e),
        };
        // The less common ends, on a client session over the same bytes.
        let Some(mut session) = session_for(stream, request, shutdown).await else {
            return ServedInPlace::Answered(None);
        };
        let forwarded = match forwarded {
            Ok((upstream, addr)) => {
                super::final_answer(&mut session, *upstream, addr, &mut ctx).await
            }
            Err(e) => Err(e),
        };
        ServedInPlace::Answered(self.conclude(session, forwarded, ctx).await)
    }

    /// Sends the request upstream and reads the answer's head. An attempt
    /// that failed on a pooled connection before any answer is tried again
    /// on a fresh one if the request is idempotent (it has no body).
    async fn send(
        &self,
        client: &mut Stream,
        request: &InPlaceRequest,
        tls: bool,
        ctx: &mut RequestCtx,
        timer: &mut KeptTimer,
    ) -> Result<Sent> {
        let idempotent = request.method().is_idempotent();
        loop {
            let attempt = self.connect(ctx).await?;
            let reused = attempt.reused;
            match self
                .send_once(client, request, attempt, tls, ctx, timer)
                .await
            {
                Ok(sent) => return Ok(sent),
                Err(e)
                    if reused
                        && idempotent
                        && matches!(e.retry, RetryType::ReusedOnly)
                        && ctx.connect_attempts < MAX_CONNECT_ATTEMPTS =>
                {
                    ctx.fresh_connection = true;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// One attempt: the request's head, and the answer's.
    async fn send_once(
        &self,
        client: &mut Stream,
        request: &InPlaceRequest,
        attempt: Attempt,
        tls: bool,
        ctx: &mut RequestCtx,
        timer: &mut KeptTimer,
    ) -> Result<Sent> {
        let Attempt {
            mut stream,
            addr,
            timeouts,
            reused,
        } = attempt;
        // On the first attempt, over a pooled connection, the request's
        // start is the clock reading just before the head is written (the
        // pool took the connection against it); a connect, or an attempt
        // before, may have taken a while.
        let sent = (reused && ctx.connect_attempts == 1).then_some(ctx.started);
        let head = upstream_head(request, request, request.target(), tls, ctx)?;
        let written = write_all(
            &mut stream,
            &head,
            timeouts.write,
            "while writing request headers",
        )
        .await;
        crate::dataplane::wire_head::give_back(head);
        written?;
        // As the session path: a client that closes its side, or sends
        // more than its request, while the answer is awaited ends the
        // exchange, and the upstream connection is dropped.
        let read = tokio::select! {
            biased;
            read = read_head(stream, timeouts.read, timer, sent) => read.map_err(|e| e.into_up())?,
            gone = probe_idle(client) => return Err(gone.into_down()),
        };
        Ok(match read {
            HeadRead::InPlace(answer) => Sent::Answer(answer, addr),
            HeadRead::Elsewhere(stream) => {
                Sent::Elsewhere(Box::new(upstream_session(stream, timeouts)), addr)
            }
        })
    }

    /// The common answer, written on the client's connection by the fast
    /// path itself, and the end of the request.
    async fn answer_in_place(
        &self,
        stream: Stream,
        request: &InPlaceRequest,
        answer: InPlaceAnswer,
        addr: SocketAddr,
        ctx: RequestCtx,
        shutdown: &ShutdownWatch,
    ) -> Option<NextRequest> {
        // A draining process answers with `Connection: close`.
        let keepalive = request.keepalive() && !*shutdown.borrow();
        let reusable = keepalive && !request.read_past();
        let client = OwnedAnswer::on(stream, answer.framing(), keepalive, reusable);
        let up = Answering {
            from: AnswerFrom::InPlace(answer),
            addr,
        };
        self.relay(client, up, request.logged(), ctx).await
    }
}

/// A request's buffer, emptied, for the connection's next head; one
/// grown past a few pages by a large head is let go rather than held for
/// the connection's life.
fn spare_buffer(mut bytes: BytesMut) -> Option<BytesMut> {
    (bytes.capacity() <= SPARE_BUFFER_LIMIT).then(|| {
        bytes.clear();
        bytes
    })
}

const SPARE_BUFFER_LIMIT: usize = 16 * 1024;

/// The client's address, as Pingora's session gives it (the PROXY header's
/// source when one was taken).
fn peer_ip(stream: &Stream) -> Option<IpAddr> {
    stream
        .get_socket_digest()
        .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).map(|a| a.ip()))
}

/// A client session over the request's bytes, as the connection loop
/// makes one: Pingora reads the request again from them.
async fn session_for(
    stream: Stream,
    request: InPlaceRequest,
    shutdown: &ShutdownWatch,
) -> Option<ServerSession> {
    let mut session = ServerSession::new_http1(stream);
    session.set_pipelined_prefix(request.into_bytes());
    match session.read_request().await {
        Ok(true) => {}
        // Read in place means Pingora reads it too; were it not so, the
        // connection is closed rather than answered from a guess.
        _ => {
            log::warn!("a request read in place was refused by Pingora's reader");
            session.shutdown().await;
            return None;
        }
    }
    if *shutdown.borrow() {
        session.set_keepalive(None);
    }
    Some(session)
}
