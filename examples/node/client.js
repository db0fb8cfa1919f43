// Decide -> Reward against an offerbandit server, from proto/ alone (no Python).
//   npm install @grpc/grpc-js @grpc/proto-loader
//   node client.js 127.0.0.1:50051
const path = require("path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

const PROTO = path.join(__dirname, "..", "..", "proto", "offers", "v1", "decision.proto");
const definition = protoLoader.loadSync(PROTO, { keepCase: true, defaults: true });
const offers = grpc.loadPackageDefinition(definition).offers.v1;

const address = process.argv[2] || "127.0.0.1:50051";
const client = new offers.DecisionService(address, grpc.credentials.createInsecure());

const request = {
  user_id: "node-customer-1",
  context: { segment: "commuter", weekday: "mon" },
  offers: [
    { id: "coffee_2off", features: { category: "food" } },
    { id: "flight_50off", features: { category: "travel" } },
  ],
  formats: ["sms", "email"],
  time_slots: ["morning", "evening"],
};

client.Decide(request, { deadline: Date.now() + 10000 }, (err, decision) => {
  if (err) { console.error("Decide failed:", err.code, err.details); process.exit(1); }
  console.log(`decided ${decision.offer_id} via ${decision.format} at ${decision.time_slot} ` +
              `p=${decision.probability} (${decision.exploration}, version ${decision.policy_version})`);
  client.Reward({ event_id: decision.event_id, value: 1.0 }, { deadline: Date.now() + 10000 }, (err2, ack) => {
    if (err2) { console.error("Reward failed:", err2.code, err2.details); process.exit(1); }
    console.log(`reward accepted=${ack.accepted} duplicate=${ack.duplicate} event=${decision.event_id}`);
    process.exit(0);
  });
});
