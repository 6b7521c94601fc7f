// What whip.html and whep.html share: the stream and API from the URL, WHIP/WHEP negotiation
// and teardown, and the status lines on the page.
'use strict';

const srsParams = new URLSearchParams(location.search);
const srsConfig = window.SRS_PROXY || {};

/** app and stream from the query, SRS's defaults otherwise. */
function srsStream() {
  return {
    app: srsParams.get('app') || 'live',
    stream: srsParams.get('stream') || 'livestream',
  };
}

/** The proxy's HTTP API: ?api=http://host:port, else this host at the port the proxy gave. */
function srsApiBase() {
  const given = srsParams.get('api');
  if (given) return given.replace(/\/+$/, '');
  return `${location.protocol}//${location.hostname}:${srsConfig.api || location.port}`;
}

/** The WHIP or WHEP endpoint of the stream. */
function srsEndpoint(kind) {
  const { app, stream } = srsStream();
  const q = `app=${encodeURIComponent(app)}&stream=${encodeURIComponent(stream)}`;
  return `${srsApiBase()}/rtc/v1/${kind}/?${q}`;
}

/** The peer connection's events and the state each reports. */
const STATES = {
  iceconnectionstatechange: 'iceConnectionState',
  connectionstatechange: 'connectionState',
  signalingstatechange: 'signalingState',
};

/** One WHIP or WHEP session shown on the page; `window.srs` for scripts and tests. */
class SrsSession {
  constructor(kind) {
    this.kind = kind;
    this.pc = null;
    this.location = null;
    this.cleanup = null;
    /** The status of the last DELETE. */
    this.deleted = null;
    this.errors = [];
    this.log = [];
    this.endpoint = srsEndpoint(kind);
    document.getElementById('endpoint').textContent = this.endpoint;
    // The origin keeps a session until told: end it when the page goes.
    window.addEventListener('pagehide', () => this.stop(true));
  }

  note(line) {
    const text = `${new Date().toISOString().slice(11, 23)} ${line}`;
    this.log.push(text);
    console.log(`[${this.kind}] ${line}`);
    const log = document.getElementById('log');
    log.textContent = this.log.slice(-30).join('\n');
  }

  fail(error) {
    const text = String(error && error.message ? error.message : error);
    this.errors.push(text);
    this.note(`error: ${text}`);
    document.getElementById('error').textContent = text;
  }

  showState() {
    const pc = this.pc;
    document.getElementById('state').textContent = pc
      ? `ice ${pc.iceConnectionState}, connection ${pc.connectionState}, signaling ${pc.signalingState}`
      : 'stopped';
  }

  /**
   * A new peer connection; `prepare` adds its transceivers and may return what to run on stop.
   * Errors end on the page.
   */
  async start(prepare) {
    await this.stop(false);
    document.getElementById('error').textContent = '';
    try {
      const pc = new RTCPeerConnection();
      this.pc = pc;
      for (const [event, property] of Object.entries(STATES)) {
        pc.addEventListener(event, () => {
          this.showState();
          this.note(`${property}: ${pc[property]}`);
        });
      }
      this.cleanup = await prepare(pc);
      await pc.setLocalDescription(await pc.createOffer());
      await gathered(pc, 2000);
      this.note(`POST ${this.endpoint}`);
      const response = await fetch(this.endpoint, {
        method: 'POST',
        headers: { 'Content-Type': 'application/sdp' },
        body: pc.localDescription.sdp,
      });
      const answer = await response.text();
      if (response.status !== 201) {
        throw new Error(`${this.kind.toUpperCase()} answered ${response.status}: ${answer}`);
      }
      const location = response.headers.get('Location');
      this.location = location ? new URL(location, this.endpoint).href : null;
      this.note(`201 Created, session ${this.location || '(no Location)'}`);
      await pc.setRemoteDescription({ type: 'answer', sdp: answer });
      this.showState();
    } catch (e) {
      this.fail(e);
    }
  }

  /**
   * DELETEs the session, then closes the connection: closing first would end the session at the
   * server (DTLS close_notify) and leave the DELETE nothing to find. `unloading`: the page is
   * going, so the request must outlive it and nobody waits for the answer.
   */
  async stop(unloading) {
    const location = this.location;
    this.location = null;
    if (location) {
      this.note(`DELETE ${location}`);
      const request = fetch(location, { method: 'DELETE', keepalive: unloading });
      if (unloading) request.catch(() => {});
      else await this.deleteAnswered(request);
    }
    if (this.cleanup) {
      this.cleanup();
      this.cleanup = null;
    }
    if (this.pc) {
      this.pc.close();
      this.pc = null;
      this.showState();
    }
  }

  /** Notes the DELETE's answer; an error status or a failed request is an error. */
  async deleteAnswered(request) {
    try {
      const response = await request;
      this.deleted = response.status;
      this.note(`DELETE answered ${response.status}`);
      if (!response.ok) this.fail(`DELETE answered ${response.status}: ${await response.text()}`);
    } catch (e) {
      this.fail(e);
    }
  }
}

/** Resolves when ICE gathering completes, or after `limit` ms (the host candidates are enough). */
function gathered(pc, limit) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      if (pc.iceGatheringState === 'complete') resolve();
    };
    pc.addEventListener('icegatheringstatechange', done);
    setTimeout(resolve, limit);
  });
}
