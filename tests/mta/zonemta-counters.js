// Runs the real zonemta-delivery-counters plugin as ZoneMTA does: its init with the plugin's
// settings, then its `queue:release` hook once per released message.
//
//   node zonemta-counters.js REDIS_URL PREFIX ZONE:delivered|bounced:DOMAIN …
//
// The plugin does not wait for Redis before it lets ZoneMTA go on, so this waits for the
// plugin's own client to finish its commands (QUIT is answered after them) before exiting.
'use strict'

const redis = require('zonemta-delivery-counters/node_modules/redis')
const plugin = require('zonemta-delivery-counters')

const [url, prefix, ...releases] = process.argv.slice(2)
const created = []
const createClient = redis.createClient
redis.createClient = (...args) => {
    const client = createClient(...args)
    created.push(client)
    return client
}

let release
const app = {
    config: { redis: url, prefix },
    logger: { error: (...args) => console.error(...args) },
    addHook: (name, hook) => {
        if (name === 'queue:release') release = hook
    },
}

plugin.init(app, () => {
    let pending = releases.length
    for (const item of releases) {
        const [zone, outcome, domain] = item.split(':')
        release({ name: zone }, { status: { delivered: outcome === 'delivered' }, domain }, () => {
            if (--pending === 0) created.forEach((client) => client.quit(() => process.exit(0)))
        })
    }
})
