//! Layers: what kind of thing a service is, with SkyWalking's numbers
//! (docs/reference/analysis.md §10).

macro_rules! layers {
    ($($variant:ident = $number:literal, $normal:literal;)*) => {
        /// The layer of a service. Only `UNDEFINED` and the `VIRTUAL_*` layers are not *normal*;
        /// the normal flag is part of the service id.
        #[allow(non_camel_case_types, missing_docs)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Layer {
            $($variant,)*
        }

        impl Layer {
            /// Every layer, in number order.
            pub const ALL: &'static [Layer] = &[$(Layer::$variant,)*];

            /// SkyWalking's number of the layer (stored in `service_traffic.layer`).
            pub const fn number(self) -> i32 {
                match self { $(Layer::$variant => $number,)* }
            }

            /// Whether services of this layer are real, instrumented services.
            pub const fn is_normal(self) -> bool {
                match self { $(Layer::$variant => $normal,)* }
            }

            /// The layer's name, e.g. `GENERAL`.
            pub const fn name(self) -> &'static str {
                match self { $(Layer::$variant => stringify!($variant),)* }
            }

            /// The layer with this number, if any.
            pub fn from_number(number: i32) -> Option<Layer> {
                match number { $($number => Some(Layer::$variant),)* _ => None }
            }
        }
    };
}

layers! {
    UNDEFINED = 0, false;
    MESH = 1, true;
    GENERAL = 2, true;
    OS_LINUX = 3, true;
    K8S = 4, true;
    FAAS = 5, true;
    MESH_CP = 6, true;
    MESH_DP = 7, true;
    DATABASE = 8, true;
    CACHE = 9, true;
    BROWSER = 10, true;
    SO11Y_OAP = 11, true;
    SO11Y_SATELLITE = 12, true;
    MQ = 13, true;
    VIRTUAL_DATABASE = 14, false;
    VIRTUAL_MQ = 15, false;
    VIRTUAL_GATEWAY = 16, false;
    K8S_SERVICE = 17, true;
    MYSQL = 18, true;
    VIRTUAL_CACHE = 19, false;
    POSTGRESQL = 20, true;
    APISIX = 21, true;
    AWS_EKS = 22, true;
    OS_WINDOWS = 23, true;
    AWS_S3 = 24, true;
    AWS_DYNAMODB = 25, true;
    AWS_GATEWAY = 26, true;
    REDIS = 27, true;
    ELASTICSEARCH = 28, true;
    RABBITMQ = 29, true;
    MONGODB = 30, true;
    KAFKA = 31, true;
    PULSAR = 32, true;
    BOOKKEEPER = 33, true;
    NGINX = 34, true;
    ROCKETMQ = 35, true;
    CLICKHOUSE = 36, true;
    ACTIVEMQ = 37, true;
    CILIUM_SERVICE = 38, true;
    SO11Y_JAVA_AGENT = 39, true;
    KONG = 40, true;
    SO11Y_GO_AGENT = 41, true;
    FLINK = 42, true;
    BANYANDB = 43, true;
    GENAI = 44, true;
    VIRTUAL_GENAI = 45, false;
    ENVOY_AI_GATEWAY = 46, true;
    IOS = 47, true;
    WECHAT_MINI_PROGRAM = 48, true;
    ALIPAY_MINI_PROGRAM = 49, true;
    AIRFLOW = 50, true;
}

impl Layer {
    /// The layer a request names (`InstancePingPkg.layer`): empty is `GENERAL`, an unknown name
    /// is `UNDEFINED`, as SkyWalking's `Layer.nameOf` with the management defaults.
    pub fn from_request_name(name: &str) -> Layer {
        if name.is_empty() {
            return Layer::GENERAL;
        }
        Layer::ALL.iter().copied().find(|layer| layer.name() == name).unwrap_or(Layer::UNDEFINED)
    }
}

impl std::fmt::Display for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_normal_flags_follow_skywalking() {
        assert_eq!(Layer::GENERAL.number(), 2);
        assert_eq!(Layer::VIRTUAL_DATABASE.number(), 14);
        assert_eq!(Layer::VIRTUAL_CACHE.number(), 19);
        assert_eq!(Layer::VIRTUAL_GENAI.number(), 45);
        let not_normal: Vec<&str> = Layer::ALL.iter().filter(|l| !l.is_normal()).map(|l| l.name()).collect();
        assert_eq!(
            not_normal,
            ["UNDEFINED", "VIRTUAL_DATABASE", "VIRTUAL_MQ", "VIRTUAL_GATEWAY", "VIRTUAL_CACHE", "VIRTUAL_GENAI"]
        );
        for (index, layer) in Layer::ALL.iter().enumerate() {
            assert_eq!(layer.number(), index as i32, "{layer} is in number order");
            assert_eq!(Layer::from_number(layer.number()), Some(*layer));
        }
    }

    #[test]
    fn request_names_map_like_skywalking() {
        assert_eq!(Layer::from_request_name(""), Layer::GENERAL);
        assert_eq!(Layer::from_request_name("MESH"), Layer::MESH);
        assert_eq!(Layer::from_request_name("nonsense"), Layer::UNDEFINED);
    }
}
