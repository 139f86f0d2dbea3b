#!/usr/bin/env ruby
# A drover --serve handler in Ruby, standard library only. Copy it and change handle.
#
#     drover-worker --job J --serve 4 -- ruby handler.rb
#
# drover writes one JSON object a line on stdin (the first one says the protocol version) and
# reads one answer a line from stdout for each item. docs/handler-protocol.md has the details.
require "json"

class Permanent < StandardError; end # an item that can never succeed: dead at once

# Your work for one item (item is nil when the id is the item). Return its result (kept with
# drover submit --keep-results BYTES), raise Permanent to give up, anything else to retry it.
def handle(id, _item)
  raise Permanent, "refusing #{id}" if id.start_with?("bad")

  { "length" => id.length }
end

$stdout.sync = true # drover waits for each line: never leave it in a buffer
hello = JSON.parse($stdin.gets)
abort "unknown handler protocol: #{hello}" unless hello["version"] == 1
$stdin.each_line do |line|
  msg = JSON.parse(line)
  answer =
    begin
      { id: msg["id"], ok: true, result: handle(msg["id"], msg["item"]) }
    rescue Permanent => e
      { id: msg["id"], error: e.message, retry: false }
    rescue StandardError => e
      { id: msg["id"], error: "#{e.class}: #{e.message}", retry: true }
    end
  puts JSON.generate(answer)
end
