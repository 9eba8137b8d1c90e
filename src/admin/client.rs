//! A blocking admin client: one connection, one request at a time.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use super::error::AdminError;

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens at the socket.
    #[error("no daemon at {socket} ({reason}); start one with `warden run`, or pass --socket / set WARDEN_SOCKET")]
    NoDaemon {
        /// The socket path.
        socket: String,
        /// The connect error.
        reason: String,
    },
    /// The daemon refused the request.
    #[error("{}: {}", .0.code, .0.message)]
    Refused(AdminError),
    /// The connection broke or the reply was not understood.
    #[error("connection to the daemon failed: {0}")]
    Io(String),
}

/// A connection to a daemon.
pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    next_id: u64,
}

impl Client {
    /// Connects to `socket`.
    pub fn connect(socket: &Path) -> Result<Client, ClientError> {
        let stream = UnixStream::connect(socket).map_err(|e| ClientError::NoDaemon {
            socket: socket.display().to_string(),
            reason: e.to_string(),
        })?;
        let writer = stream
            .try_clone()
            .map_err(|e| ClientError::Io(e.to_string()))?;
        Ok(Client {
            reader: BufReader::new(stream),
            writer,
            next_id: 1,
        })
    }

    /// Sets how long to wait for a reply (`None`: forever).
    pub fn set_timeout(&self, t: Option<Duration>) {
        let _ = self.writer.set_read_timeout(t);
    }

    /// Sends `op` with `fields` and returns the `result`.
    pub fn request(&mut self, op: &str, fields: Value) -> Result<Value, ClientError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut req = json!({"id": id, "op": op});
        if let (Some(r), Value::Object(f)) = (req.as_object_mut(), fields) {
            r.extend(f);
        }
        let mut line = serde_json::to_vec(&req).expect("JSON encodes");
        line.push(b'\n');
        self.writer
            .write_all(&line)
            .map_err(|e| ClientError::Io(e.to_string()))?;
        let reply = self.read()?;
        if reply["ok"] == json!(true) {
            Ok(reply["result"].clone())
        } else {
            let e: AdminError = serde_json::from_value(reply["error"].clone())
                .map_err(|_| ClientError::Io(format!("unexpected reply: {reply}")))?;
            Err(ClientError::Refused(e))
        }
    }

    /// Reads one reply or event line.
    pub fn read(&mut self) -> Result<Value, ClientError> {
        let mut buf = String::new();
        match self.reader.read_line(&mut buf) {
            Ok(0) => Err(ClientError::Io("the daemon closed the connection".into())),
            Ok(_) => serde_json::from_str(&buf)
                .map_err(|e| ClientError::Io(format!("bad reply line: {e}"))),
            Err(e) => Err(ClientError::Io(e.to_string())),
        }
    }
}
