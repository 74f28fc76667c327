// mailops: Haraka's outbound delivery results as mail events, posted to mailops-agent's
// local events endpoint (`mailops-agent run --events-listen 127.0.0.1:9725`), which spools
// them and sends them on to mailops. One event per recipient:
//
//   delivered → DELIVERED   deferred → DEFERRED   bounce → BOUNCED
//
// with the queue id (messageId), the sending IP (the MX's `bind` where Haraka gives it, else
// the transaction note `outbound_ip`, else `sending_ip` of mailops.ini), the recipient's
// domain, the SMTP code and the receiver's response. Delivery never waits for the agent:
// a post runs beside it, is retried (`retries`, 1 s apart), and is logged if it still fails.
//
// Install: copy this file to <haraka>/plugins/mailops.js, mailops.ini to
// <haraka>/config/mailops.ini, and add the line `mailops` to <haraka>/config/plugins.

'use strict'

const http = require('node:http')
const https = require('node:https')
const { URL } = require('node:url')

exports.register = function () {
    this.load_mailops_ini()
    this.register_hook('delivered', 'on_delivered')
    this.register_hook('deferred', 'on_deferred')
    this.register_hook('bounce', 'on_bounce')
}

exports.load_mailops_ini = function () {
    this.cfg = this.config.get('mailops.ini', () => this.load_mailops_ini())
    const main = this.cfg.main || {}
    this.events_url = main.url || 'http://127.0.0.1:9725/events'
    this.zone = main.zone || null
    this.sending_ip = main.sending_ip || null
    this.timeout_ms = Number(main.timeout_ms) > 0 ? Number(main.timeout_ms) : 5000
    this.retries = Number(main.retries) >= 0 ? Number(main.retries) : 3
}

function smtp_code(value) {
    const code = Number.parseInt(value, 10)
    return code >= 200 && code <= 599 ? code : null
}

// The receiver's text as it sent it: Haraka keeps the enhanced status code apart
// (dsn_status) and strips it from the text when it led the line.
function with_status(rcpt, text) {
    const status = rcpt && rcpt.dsn_status
    if (!text || !status || !/^[245]\.\d{1,3}\.\d{1,3}$/.test(status) || text.startsWith(status)) return text
    return `${status} ${text}`
}

exports.event = function (hmail, status, rcpt, { code, response, mx } = {}) {
    const todo = hmail.todo || {}
    return {
        ts: new Date().toISOString(),
        messageId: todo.uuid || hmail.filename,
        status,
        sendingIp: (mx && mx.bind) || (todo.notes && todo.notes.outbound_ip) || this.sending_ip,
        recipientDomain: (rcpt && rcpt.host) || todo.domain || null,
        zone: this.zone,
        smtpCode: smtp_code(code !== undefined ? code : rcpt && rcpt.dsn_smtp_code),
        response: with_status(rcpt, response || (rcpt && rcpt.dsn_smtp_response)) || null,
    }
}

exports.on_delivered = function (next, hmail, params) {
    const [, , response, , , , ok_recips] = params
    const recipients = ok_recips && ok_recips.length ? ok_recips : hmail.todo.rcpt_to
    const code = /^\s*(\d{3})/.exec(response || '')
    this.post(
        recipients.map((rcpt) =>
            this.event(hmail, 'DELIVERED', rcpt, {
                code: rcpt.dsn_smtp_code || (code ? code[1] : '250'),
                response: rcpt.dsn_smtp_response || response,
            }),
        ),
    )
    next()
}

exports.on_deferred = function (next, hmail, params) {
    const recipients = (params && params.fail_recips) || hmail.todo.rcpt_to
    const mx = params && params.mx
    this.post(
        recipients.map((rcpt) =>
            this.event(hmail, 'DEFERRED', rcpt, {
                mx,
                response: rcpt.dsn_smtp_response || String((params && params.err) || ''),
            }),
        ),
    )
    next()
}

exports.on_bounce = function (next, hmail, err) {
    const bounced = (err && err.bounced_rcpt) || hmail.todo.rcpt_to
    this.post(
        bounced.map((rcpt) =>
            this.event(hmail, 'BOUNCED', rcpt, {
                mx: err && err.mx,
                response: rcpt.dsn_smtp_response || (err && err.message) || null,
            }),
        ),
    )
    next()
}

exports.post = function (events, attempt = 0) {
    if (!events.length) return
    const body = JSON.stringify(events)
    const retry = (reason) => {
        if (attempt < this.retries) {
            setTimeout(() => this.post(events, attempt + 1), 1000)
        } else {
            this.logerror(`${events.length} events not delivered to mailops-agent: ${reason}`)
        }
    }
    const url = new URL(this.events_url)
    const request = (url.protocol === 'https:' ? https : http).request(
        url,
        {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
            timeout: this.timeout_ms,
        },
        (res) => {
            let answer = ''
            res.setEncoding('utf8')
            res.on('data', (chunk) => (answer += chunk))
            res.on('end', () => {
                if (res.statusCode === 400) {
                    // The agent refused the events themselves: sending them again cannot help.
                    this.logerror(`mailops-agent refused ${events.length} events: ${answer}`)
                } else if (res.statusCode < 200 || res.statusCode > 299) {
                    retry(`HTTP ${res.statusCode}: ${answer}`)
                }
            })
        },
    )
    request.on('timeout', () => request.destroy(new Error(`no answer within ${this.timeout_ms} ms`)))
    request.on('error', (e) => retry(e.message))
    request.end(body)
}
