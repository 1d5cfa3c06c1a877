//! The private servers tests start (PostgreSQL clusters, NATS brokers) get
//! their ports without a race with anything else on the machine: NATS binds
//! a port of its own choosing; PostgreSQL, which cannot, moves to another
//! port when the one picked for it was taken before it bound it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;

use sqlx::{Connection, PgConnection};
use store_orders_tests::nats::NatsServer;
use store_orders_tests::own_cluster::OwnCluster;

#[tokio::test]
async fn a_private_postgresql_moves_to_another_port_when_its_port_was_taken() {
    let squatter = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = squatter.local_addr().unwrap().port();
    let cluster = OwnCluster::start_trying_port_first(taken, &[]);
    assert_ne!(cluster.port, taken, "it cannot listen where another does");
    let mut connection = PgConnection::connect(&cluster.url("postgres"))
        .await
        .unwrap();
    let (port,): (String,) = sqlx::query_as("SHOW port")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    assert_eq!(port, cluster.port.to_string());
    connection.close().await.unwrap();
    drop(squatter);
}

#[tokio::test]
async fn a_private_nats_server_listens_where_it_chose_and_comes_back_there() {
    let mut nats = NatsServer::start().await;
    assert_ne!(nats.port, 0, "the port it bound is read back");
    let client = async_nats::connect(nats.url()).await.unwrap();
    client.flush().await.unwrap();
    let chosen = nats.port;
    nats.stop().await;
    assert!(
        async_nats::connect(nats.url()).await.is_err(),
        "nothing listens while it is stopped"
    );
    nats.resume().await;
    assert_eq!(nats.port, chosen, "its clients find it where it was");
    let client = async_nats::connect(nats.url()).await.unwrap();
    client.flush().await.unwrap();
}
