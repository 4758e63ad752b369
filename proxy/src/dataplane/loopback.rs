//! Test support: a real loopback TCP connection for the data plane's unit
//! tests, the accepted side wrapped as the `Stream` Pingora hands a worker.

use pingora::protocols::Stream;
use tokio::net::{TcpListener, TcpStream};

/// A loopback connection: the accepted side as a client connection reaches
/// a worker, and the connecting side for the test to play the client.
pub(super) async fn accepted_connection() -> (Stream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, _) = listener.accept().await.unwrap();
    let stream: Stream = Box::new(pingora::protocols::l4::stream::Stream::from(server));
    (stream, client)
}
