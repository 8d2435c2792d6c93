-- A static host map for Prosody's outbound s2s, for xmppd's interop tests: Prosody
-- 0.12 resolves remote domains through DNS only. Config: test_host_map = {
-- ["domain"] = { "127.0.0.1", port } }. Domains not in the map resolve as usual.
local service = require "net.resolvers.service";
local manual = require "net.resolvers.manual";

local host_map = module:get_option("test_host_map", {});
local resolve = service.new;

service.new = function (hostname, service_name, conn_type, extra)
	local target = host_map[hostname];
	if not target then
		return resolve(hostname, service_name, conn_type, extra);
	end
	if service_name ~= "xmpp-server" then
		return manual.new({}, conn_type, extra); -- no direct TLS (xmpps-server) there
	end
	return manual.new({ { "tcp4", target[1], target[2], extra } }, conn_type, extra);
end

function module.unload()
	service.new = resolve;
end
